import Foundation
import HavelCore
import SystemKit

/// What goes into `buildenv.img`: the packages, the files Havel adds, and the commands run in the
/// tree. Pure values, so they can be checked without building anything.
public enum ImageRecipe {
    /// A bootable host-arch Debian (kernel, systemd, networkd on DHCP) plus every tool a build runs.
    public static let basePackages = [
        // boot: kernel, systemd as init, udev, dbus (logind handles the ACPI power button of `stop`)
        "linux-image-amd64", "systemd-sysv", "udev", "dbus", "initramfs-tools", "kmod",
        "procps", "iproute2", "ca-certificates", "debian-archive-keyring",
        // making root filesystems: bootstrap tools and qemu-user for foreign architectures
        // (qemu-user-static's binfmt entries are registered at boot by systemd-binfmt)
        "mmdebstrap", "debootstrap", "arch-test", "qemu-user-static", "gpg", "gpg-agent",
        // archives and disk images from plain files
        "tar", "zstd", "xz-utils", "bzip2", "gzip", "pigz", "cpio", "util-linux", "passwd", "fdisk",
        "e2fsprogs", "dosfstools", "mtools", "squashfs-tools", "erofs-utils", "btrfs-progs", "f2fs-tools",
        // what a project may ask for beyond a tree: UBI images, its own packages (<pbuilder>) in a signed
        // project repository, the source and binary CDs, the android-sparse packer (InitVMToolsTests holds
        // this list to the tools the build stages check for)
        "mtd-utils", "pbuilder", "git", "dpkg-dev", "apt-utils", "gpgv", "xorriso", "curl", "android-sdk-libsparse-utils",
    ]

    /// Modules the initramfs carries (MODULES=list): enough to mount /dev/vda and bring up the NIC.
    public static let initramfsModules = ["virtio_pci", "virtio_blk", "virtio_net", "ext4"]

    /// Units that would only wake the VM up or delay a boot nobody waits for.
    /// serial-getty@ttyS0: havel-console.service has the line.
    public static let maskedUnits = ["apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
                                     "e2scrub_reap.service", "systemd-networkd-wait-online.service", "serial-getty@ttyS0.service"]

    public static let daemonUnitName = "havel-daemon.service"

    /// The command line the guest's systemd starts the daemon with.
    public static var daemonCommandLine: [String] {
        [InitVMDefaults.guestBinary, "daemon", "--listen", "0.0.0.0:\(InitVMDefaults.guestPort)",
         "--data", InitVMDefaults.guestDataPath, "--token-file", InitVMDefaults.guestTokenPath,
         // qemu's user network: the host that started the VM, where a project's LOCALMACHINE proxy runs.
         "--local-machine", "10.0.2.2"]
    }

    public static var daemonUnit: String {
        """
        [Unit]
        Description=Havel daemon (build API on port \(InitVMDefaults.guestPort))
        After=network.target
        Wants=network.target

        [Service]
        ExecStart=\(daemonCommandLine.joined(separator: " "))
        # The daemon makes a child cgroup per build, so that cancelling a build kills every process of it.
        Delegate=yes
        Environment=HOME=/root LC_ALL=C.UTF-8
        Restart=on-failure
        RestartSec=2

        [Install]
        WantedBy=multi-user.target

        """
    }

    /// systemd-networkd: DHCP on the virtio NIC (qemu's user network hands out 10.0.2.15).
    public static let networkUnit = """
        [Match]
        Type=ether

        [Network]
        DHCP=ipv4

        [DHCPv4]
        UseDNS=no

        """

    public static let consoleUnitName = "havel-console.service"

    /// The serial console logs root in: whoever can open console.sock on the host is root there anyway.
    /// Its own unit rather than the generator's serial-getty@ttyS0 (masked), which is bound to udev's
    /// dev-ttyS0.device and gives up for good after 90 s: under emulation on a busy host udev's coldplug
    /// takes longer than that, and the console then never gets a getty. ttyS0 is built into the kernel,
    /// so its node is in devtmpfs from the start and agetty need not wait for udev.
    public static let consoleUnit = """
        [Unit]
        Description=Havel initvm console: root on ttyS0
        After=systemd-user-sessions.service getty-pre.target rc-local.service
        Before=getty.target
        IgnoreOnIsolate=yes

        [Service]
        ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 ttyS0 $TERM
        Type=idle
        Restart=always
        UtmpIdentifier=ttyS0
        StandardInput=tty
        StandardOutput=tty
        TTYPath=/dev/ttyS0
        TTYReset=yes
        TTYVHangup=yes
        IgnoreSIGPIPE=no
        SendSIGHUP=yes

        [Install]
        WantedBy=getty.target

        """

    public static let fstab = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"
    public static let resolvConf = "nameserver \(InitVMDefaults.dnsServer)\n"
    public static let hosts = """
        127.0.0.1\tlocalhost
        127.0.1.1\t\(InitVMDefaults.hostname)
        ::1\tlocalhost ip6-localhost ip6-loopback

        """

    public static let swapUnitName = "havel-swap.service"

    /// `<swap-size>`: a swap file made at the first boot with fallocate (a file in the image would be
    /// sparse, which swapon refuses), then switched on at every boot. It does not delay the daemon.
    public static func swapUnit(bytes: UInt64) -> String {
        """
        [Unit]
        Description=Havel initvm swap file (\(ByteCount.format(bytes)), <swap-size>)

        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=/bin/sh -c 'set -e; if [ ! -e /swapfile ]; then fallocate -l \(bytes) /swapfile.new; chmod 600 /swapfile.new; mkswap /swapfile.new >/dev/null; mv /swapfile.new /swapfile; fi; swapon /swapfile'

        [Install]
        WantedBy=multi-user.target

        """
    }

    /// Files (path in the guest, contents, mode) that the customize hook copies into the tree.
    public static func payloadFiles(token: String, swapBytes: UInt64? = nil) -> [(path: String, contents: String, mode: Int)] {
        var files = baseFiles(token: token)
        if let swapBytes { files.append(("/etc/systemd/system/" + swapUnitName, swapUnit(bytes: swapBytes), 0o644)) }
        return files
    }

    static func baseFiles(token: String) -> [(path: String, contents: String, mode: Int)] {
        [
            ("/etc/initramfs-tools/conf.d/havel-initvm", "# Havel: a small initramfs with just what the initvm needs.\nMODULES=list\n", 0o644),
            ("/etc/initramfs-tools/modules", initramfsModules.joined(separator: "\n") + "\n", 0o644),
            ("/etc/systemd/network/20-havel-initvm.network", networkUnit, 0o644),
            ("/etc/systemd/system/" + daemonUnitName, daemonUnit, 0o644),
            ("/etc/systemd/system/" + consoleUnitName, consoleUnit, 0o644),
            ("/etc/fstab", fstab, 0o644),
            ("/etc/hosts", hosts, 0o644),
            (InitVMDefaults.guestTokenPath, token + "\n", 0o600),
        ]
    }

    /// The customize hook (run by mmdebstrap with the tree as `$1`, /proc, /sys and /dev mounted):
    /// payload in, units enabled, the project's finetuning, then the one initramfs generation.
    public static func customizeHook(payload: String, finetuning: [String], initramfsCommands: String) -> String {
        var script = """
            #!/bin/sh
            # Havel: turn the tree into the initvm's root filesystem.
            set -eu
            root="$1"
            cp -a \(Command.shellQuote(payload))/. "$root"/
            mkdir -p "$root\(InitVMDefaults.guestDataPath)"
            chmod 700 "$root/etc/havel"
            chroot "$root" systemctl enable systemd-networkd.service \(daemonUnitName) \(consoleUnitName)
            if [ -e "$root/etc/systemd/system/\(swapUnitName)" ]; then chroot "$root" systemctl enable \(swapUnitName); fi
            chroot "$root" systemctl mask \(maskedUnits.joined(separator: " "))

            """
        for command in finetuning {
            script += "echo \(Command.shellQuote("initvm finetuning: " + command))\n"
            script += "chroot \"$root\" /bin/sh -c \(Command.shellQuote(command))\n"
        }
        script += "chroot \"$root\" /bin/sh -c \(Command.shellQuote(initramfsCommands))\n"
        return script
    }

    /// Packages for the initvm: the base set, the binary's shared libraries' packages, the project's pkg-list.
    public static func packages(extra: [String]) -> [String] {
        var seen = Set<String>()
        return (basePackages + extra).filter { !$0.isEmpty && seen.insert($0).inserted }
    }
}
