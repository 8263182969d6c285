#!/bin/bash
# Builds ELBE's own example projects with Havel against this machine's mirror (--mirror host), each with
# its check-image-list, and prints a Markdown table: example, result, time, and for every build that did
# not pass the reason Havel gave (a suite or architecture the mirror lacks, an item Havel does not build,
# a failed check). `make examples` runs it; the README keeps its last full table.
#
#   HAVEL_ELBE_EXAMPLES  the examples' directory (default ../shared/elbe-examples)
#   HAVEL_EXAMPLES       comma-separated file names to build (default: all)
#   HAVEL_EXAMPLES_OUT   where the build directories go (default /var/tmp/havel-examples)
#   HAVEL_EXAMPLES_LIMIT time limit of one build, in minutes (default 90)
set -uo pipefail

havel=${HAVEL:-.build/debug/havel}
examples=${HAVEL_ELBE_EXAMPLES:-../shared/elbe-examples}
out=${HAVEL_EXAMPLES_OUT:-/var/tmp/havel-examples}
limit=${HAVEL_EXAMPLES_LIMIT:-90}
only=${HAVEL_EXAMPLES:-}

[[ -x "$havel" ]] || { echo "build-elbe-examples: $havel is missing; run make build first" >&2; exit 2; }
[[ -d "$examples" ]] || { echo "build-elbe-examples: no examples at $examples (set HAVEL_ELBE_EXAMPLES)" >&2; exit 2; }
mkdir -p "$out"
table="$out/examples.md"

# The mirror's host names, from this machine's apt sources: never written into the table (it may go into
# the README), MIRROR_HOST stands for them.
mirror_hosts=$(grep -rhoE 'https?://[^/ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | sed 's#.*://##' | sort -u)

# One line of a Markdown cell: no pipes, no newlines, no mirror host, no addresses, at most 200 characters.
cell() {
    local text
    text=$(tr '\n|' ' /' | sed 's/ *\[IP: [^]]*\]//g; s/  */ /g; s/^ //; s/ $//')
    for host in $mirror_hosts; do text=${text//$host/MIRROR_HOST}; done
    printf '%s' "$text" | cut -c1-200
}

{
    echo "| example | result | time | reason |"
    echo "|---|---|---|---|"
} > "$table"
passed=0 failed=0
for file in "$examples"/*.xml; do
    name=$(basename "$file")
    if [[ -n "$only" && ",$only," != *",$name,"* ]]; then continue; fi
    directory="$out/${name%.xml}"
    rm -rf "$directory"
    log="$out/${name%.xml}.log"
    echo "build-elbe-examples: $name" >&2
    started=$(date +%s)
    timeout --kill-after=60 "${limit}m" "$havel" build "$file" --mirror host -o "$directory" --quiet \
        --include-dir "$examples" > "$log" 2>&1
    status=$?
    seconds=$(( $(date +%s) - started ))
    time=$(printf '%dm%02ds' $((seconds / 60)) $((seconds % 60)))
    if (( status == 0 )); then
        result="built"; reason=""
        if grep -q "<testcase" "$directory/check.xml" 2>/dev/null; then result="built, checks passed"; fi
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        case $status in
            124|137) result="timed out"; reason="no result within $limit minutes" ;;
            *) result="not built (exit $status)"
               # Havel's own error line first, else the log's last line.
               reason=$(grep -m1 -E '^havel: ' "$log" || tail -n 1 "$log")
               reason=${reason#havel: } ;;
        esac
    fi
    echo "| $name | $result | $time | $(echo "$reason" | cell) |" >> "$table"
    # Keep the log and the reports, not the images: the examples are large.
    find "$directory" -maxdepth 1 -type f \( -name '*.img' -o -name '*.tar.*' -o -name '*.qcow2' \) -delete 2>/dev/null
    rm -rf "$directory/rootfs" "$directory/.work" 2>/dev/null
done
cat "$table"
echo "build-elbe-examples: $passed built, $failed not; table in $table" >&2
