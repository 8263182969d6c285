import Foundation
import HavelCore
import Logging
import Synchronization
import SystemKit
import Testing
@testable import BootCheck

/// A tiny guest for real boots: the Debian kernel from scripts/fetch-test-kernel.sh and a busybox
/// initramfs whose /init plays a login conversation on ttyS0 ("havel-test login: ", "Password: ")
/// and then gives a shell with the prompt "# ". The password it wants comes from the kernel command
/// line (`havel.password=…`, default "root"); a wrong one gets "Login incorrect". With `havel.getty=gaveup`
/// it prints what systemd prints when its serial getty gave up, and nothing more; with `havel.boot=emergency`,
/// what it prints when a mount's device did not come and it entered emergency mode.
enum TestGuest {
    static let kernelDirectory = ProcessInfo.processInfo.environment["HAVEL_TEST_KERNEL_DIR"] ?? "/var/cache/havel/test-kernel"
    static let kernel = ProcessInfo.processInfo.environment["HAVEL_TEST_KERNEL"] ?? kernelDirectory + "/vmlinuz"
    static let qemu = "qemu-system-x86_64"

    static var available: Bool {
        ProcessRunner.which(qemu) != nil && ProcessRunner.which("cpio") != nil
            && FileManager.default.isExecutableFile(atPath: "/bin/busybox") && FileManager.default.fileExists(atPath: kernel)
    }

    static let skipReason: Comment = """
        needs qemu-system-x86_64, busybox-static, cpio and a Debian test kernel at \(kernel): \
        run scripts/setup-host.sh as root (it calls scripts/fetch-test-kernel.sh)
        """

    static let initScript = """
        #!/bin/busybox sh
        /bin/busybox mount -t devtmpfs devtmpfs /dev
        exec </dev/ttyS0 >/dev/ttyS0 2>&1
        /bin/busybox --install -s /bin
        mount -t proc proc /proc
        mount -t sysfs sysfs /sys
        want=root
        for word in $(cat /proc/cmdline); do
            case $word in
                havel.password=*) want=${word#havel.password=} ;;
                havel.getty=gaveup) gaveup=1 ;;
                havel.boot=emergency) emergency=1 ;;
            esac
        done
        echo "Havel BootCheck test guest"
        if [ -n "$gaveup" ]; then
            # systemd 252's words when serial-getty@ttyS0's device job timed out; no login follows.
            printf '\\033[0;1;38;5;185mDEPEND\\033[0m] Dependency failed for \\033[0;1;39mseri\\342\\200\\246rvice\\033[0m - Serial Getty on ttyS0.\\n'
            exec sleep 3600
        fi
        if [ -n "$emergency" ]; then
            # systemd 252's words when a mount's device did not come in time; sulogin waits, no login follows.
            printf '[\\033[0;1;31m TIME \\033[0m] Timed out waiting for device \\033[0;1;39mdev-disk-by\\\\x2dlabel-efi.device\\033[0m - /dev/disk/by-label/efi.\\n'
            printf '[\\033[0;1;38;5;185mDEPEND\\033[0m] Dependency failed for \\033[0;1;39mboot-efi.mount\\033[0m - /boot/efi.\\n'
            echo 'You are in emergency mode. After logging in, type "journalctl -xb" to view'
            printf 'Give root password for maintenance\\n(or press Control-D to continue): '
            exec sleep 3600
        fi
        while true; do
            printf 'havel-test login: '
            read -r user || exit 1
            printf 'Password: '
            stty -echo 2>/dev/null; read -r pass; stty echo 2>/dev/null; echo
            [ "$user" = root ] && [ "$pass" = "$want" ] && break
            sleep 1
            echo "Login incorrect"
        done
        export PS1='# ' HOME=/ PATH=/bin
        exec sh

        """

    /// The build directory of the tests: `vmlinuz` (a link to the kernel), `initrd.gz` and a
    /// 1 MiB `sda.img`, so that options can name them relative to it as projects do.
    nonisolated(unsafe) static var removedAtExit: String?

    static let directory: Task<String, any Error> = Task {
        let temporary = FileManager.default.temporaryDirectory.path
        // Directories of earlier test runs whose process is gone.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? []
        where name.hasPrefix("havel-bootcheck-") {
            if let pid = Int32(name.dropFirst("havel-bootcheck-".count)), pid == getpid() || kill(pid, 0) != 0 {
                try? FileManager.default.removeItem(atPath: temporary + "/" + name)
            }
        }
        let dir = temporary + "/havel-bootcheck-\(getpid())"
        // Shared by every test of the run, so removed when the test process exits.
        removedAtExit = dir
        atexit {
            if let path = TestGuest.removedAtExit { try? FileManager.default.removeItem(atPath: path) }
        }
        let root = dir + "/initramfs"
        try FileManager.default.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        for sub in ["dev", "proc", "sys"] {
            try FileManager.default.createDirectory(atPath: root + "/" + sub, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: root + "/bin/busybox")
        try initScript.write(toFile: root + "/init", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root + "/init")
        try await ProcessRunner.check(Command("sh", ["-c", "cd initramfs && find . | cpio -o -H newc --quiet | gzip -1 > ../initrd.gz"],
                                              workingDirectory: dir))
        try FileManager.default.createSymbolicLink(atPath: dir + "/vmlinuz", withDestinationPath: kernel)
        try Data(count: 1 << 20).write(to: URL(fileURLWithPath: dir + "/sda.img"))
        return dir
    }

    /// Options for a boot of the test guest, tagged with a unique `-name` to find its qemu later.
    static func options(password: String = "root", extra: String = "", append: String = "", tag: String) -> String {
        "-m 256 -name \(tag) -drive format=raw,file=$ELBE_IMG -kernel vmlinuz -initrd initrd.gz "
            + "-append 'console=ttyS0 panic=-1 no_timer_check havel.password=\(password)\(append)' \(extra)"
    }

    /// The step limit is a hang guard, not a speed bound: a passing check waits only for the guest's answer.
    /// 30 s was too short in a CI run at load average 20, where the busybox guest's echo of a shell
    /// command came after it (the transcript showed the answer once the check had failed).
    static func context(_ directory: String, boot: Duration = .seconds(180), step: Duration = .seconds(300),
                        transcript: String? = nil) -> CheckContext {
        CheckContext(buildDirectory: directory, imagePath: "sda.img", accelerator: .tcg,
                     bootTimeout: boot, stepTimeout: step, transcriptPath: transcript)
    }

    static func newTag() -> String { "havel-bootcheck-test-" + UUID().uuidString.prefix(8).lowercased() }

    /// True when a qemu started with this tag still runs.
    static func qemuRunning(_ tag: String) async throws -> Bool {
        let result = try await ProcessRunner.run(Command("pgrep", ["-f", tag]))
        return result.succeeded
    }
}


