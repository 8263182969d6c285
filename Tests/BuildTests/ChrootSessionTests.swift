// `havel chroot BUILDDIR` as a person meets it, typed into through tmux: the target's login shell with a prompt
// naming project, architecture and host name, job control that works, and no warning from the shell at exit.
import Foundation
import SystemKit
import Testing

enum ChrootSession {
    static let missingReason: String? = {
        if geteuid() != 0 { return "needs root (chroot, namespaces)" }
        for tool in ["tmux", "script", "unshare"] where ProcessRunner.which(tool) == nil { return "needs \(tool) (scripts/setup-host.sh installs it)" }
        return nil
    }()
}

@Suite(.enabled(if: ChrootSession.missingReason == nil, Comment(rawValue: ChrootSession.missingReason ?? "")))
struct ChrootSessionTests {
    /// A small native tree made of the host's bash, dash and a few programs with their libraries, and a build
    /// record: the session is what is tested, not the tree.
    static let makeTree = #"""
        set -e
        T="$1"; R="$T/rootfs"
        mkdir -p "$R"/proc "$R"/sys "$R"/dev "$R"/etc "$R"/root "$R"/tmp "$R"/usr/bin "$R"/bin
        for b in /usr/bin/bash /usr/bin/dash /usr/bin/sleep /usr/bin/id /usr/bin/hostname; do
            cp "$b" "$R/usr/bin/"
            for l in $(ldd "$b" | grep -oE '/[^ ]+'); do mkdir -p "$R$(dirname "$l")"; cp -n "$l" "$R$l"; done
        done
        ln -s dash "$R/usr/bin/sh"; ln -s ../usr/bin/bash "$R/bin/bash"; ln -s ../usr/bin/dash "$R/bin/sh"
        echo 'root:x:0:0:root:/root:/bin/bash' > "$R/etc/passwd"
        echo 'root:x:0:' > "$R/etc/group"
        echo session-board > "$R/etc/hostname"
        cp /etc/bash.bashrc /etc/profile "$R/etc/"
        printf '%s' '{"format":2,"status":"done","project":"session-try","version":"1","architecture":"amd64","havelVersion":"0","started":"2026-01-01T00:00:00Z","stages":[],"outputs":[],"artifacts":[],"checks":{}}' > "$T/state.json"
        """#

    func tmux(_ arguments: [String]) async throws -> String {
        try await ProcessRunner.check(Command("tmux", ["-L", socket] + arguments)).standardOutput
    }

    let socket = "havel-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    /// Waits (on the screen's content, with a generous deadline for a busy machine) until `text` shows.
    func screen(showing text: String) async throws -> String {
        let started = ContinuousClock.now
        var shown = ""
        while ContinuousClock.now - started < .seconds(120) {
            shown = try await tmux(["capture-pane", "-p", "-t", "s"])
            if shown.contains(text) { return shown }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("\"\(text)\" never showed; the screen:\n\(shown)")
        return shown
    }

    @Test func aPersonGetsTheLoginShellWithJobControlAndNoWarningAtExit() async throws {
        let havel = try #require(Integration.havelExecutable, "swift build makes .build/debug/havel")
        let base = try Integration.temporaryDirectory("session")
        defer { try? FileManager.default.removeItem(atPath: base) }
        try await ProcessRunner.check(Command("bash", ["-c", Self.makeTree, "make-tree", base]))
        _ = try await tmux(["new-session", "-d", "-s", "s", "-x", "150", "-y", "40",
                            "\(havel) chroot \(base); echo havel-exit=$?; sleep 600"])
        defer {
            // Synchronously, so that no tmux server (and the session in it) outlives a failed test.
            let kill = Process()
            kill.executableURL = URL(fileURLWithPath: ProcessRunner.which("tmux") ?? "/usr/bin/tmux")
            kill.arguments = ["-L", socket, "kill-server"]
            try? kill.run()
            kill.waitUntilExit()
        }
        let prompt = "(havel session-try amd64)root@session-board:/#"
        _ = try await screen(showing: prompt)
        _ = try await tmux(["send-keys", "-t", "s", "sleep 300 &", "Enter"])
        _ = try await tmux(["send-keys", "-t", "s", "jobs", "Enter"])
        _ = try await screen(showing: "Running")
        _ = try await tmux(["send-keys", "-t", "s", "fg", "Enter"])
        _ = try await screen(showing: "\nsleep 300")
        _ = try await tmux(["send-keys", "-t", "s", "C-c"])
        _ = try await tmux(["send-keys", "-t", "s", "echo interrupted-$?", "Enter"])
        _ = try await screen(showing: "interrupted-130")
        _ = try await tmux(["send-keys", "-t", "s", "exit 0", "Enter"])
        let end = try await screen(showing: "havel-exit=")
        #expect(end.contains("havel-exit=0"), "\(end)")
        #expect(!end.contains("Cannot set tty process group") && !end.contains("no job control"), "\(end)")
        #expect(!end.contains("job control turned off"), "\(end)")
        #expect(Mounts.mountPoints(under: base).isEmpty)
    }
}
