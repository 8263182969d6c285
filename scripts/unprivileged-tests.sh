#!/bin/bash
# Runs the Swift Testing suites matching FILTER from the test bundle as an unprivileged user (nobody), so
# that tests meant to need no root prove it. Run as a user already, it simply runs them.
set -euo pipefail
bundle=$1 filter=$2
if [[ $(id -u) -eq 0 ]]; then
    # The bundle's directories must be readable by nobody (they are, unless a umask said otherwise).
    exec setpriv --reuid=65534 --regid=65534 --clear-groups --reset-env \
        env HOME=/tmp TMPDIR=/tmp PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        "$bundle" --testing-library swift-testing --filter "$filter"
fi
exec "$bundle" --testing-library swift-testing --filter "$filter"
