// TestFixtures owns what several test targets make for themselves: two tiny Debian source packages (a
// library and a program that links it), as a directory, a git repository or an <archive>.

import Foundation
import SystemKit

/// Two tiny package sources made in a directory: libhello (libhello1, libhello-dev) and hello-prog.
public enum OwnPackageFixtures {
    public static let changelogDate = "Sat, 01 Jan 2022 00:00:00 +0000"

    public static func write(_ files: [String: String], in directory: String) throws {
        for (name, text) in files {
            let path = directory + "/" + name
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            if name.hasSuffix("rules") { chmod(path, 0o755) }
        }
    }

    public static func common(_ source: String) -> [String: String] {
        [
            "debian/changelog": "\(source) (1.0) bookworm; urgency=medium\n\n  * Test package.\n\n -- Havel Tests <tests@example.org>  \(changelogDate)\n",
            "debian/source/format": "3.0 (native)\n",
        ]
    }

    public static func library(in directory: String) throws {
        var files = common("libhello")
        files["hello.c"] = "#include <stdio.h>\n#include \"hello.h\"\nvoid hello_greet(const char *who) { printf(\"hello from libhello, %s\\n\", who); }\n"
        files["hello.h"] = "void hello_greet(const char *who);\n"
        files["Makefile"] = """
            all: libhello.so.1
            libhello.so.1: hello.c
            \t$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -shared -fPIC -Wl,-soname,libhello.so.1 -o $@ $<
            install:
            \tinstall -D -m 644 libhello.so.1 $(DESTDIR)/usr/lib/libhello.so.1
            \tln -sf libhello.so.1 $(DESTDIR)/usr/lib/libhello.so
            \tinstall -D -m 644 hello.h $(DESTDIR)/usr/include/hello.h

            """
        files["debian/control"] = """
            Source: libhello
            Section: libs
            Priority: optional
            Maintainer: Havel Tests <tests@example.org>
            Build-Depends: debhelper-compat (= 13)
            Standards-Version: 4.6.2

            Package: libhello1
            Architecture: any
            Depends: ${shlibs:Depends}, ${misc:Depends}
            Description: greeting library
             A test library.

            Package: libhello-dev
            Architecture: any
            Depends: libhello1 (= ${binary:Version}), ${misc:Depends}
            Description: greeting library (development files)
             A test library.

            """
        files["debian/rules"] = "#!/usr/bin/make -f\n%:\n\tdh $@\noverride_dh_auto_install:\n\t$(MAKE) install DESTDIR=$(CURDIR)/debian/tmp\n"
        files["debian/libhello1.install"] = "usr/lib/libhello.so.1\n"
        files["debian/libhello-dev.install"] = "usr/lib/libhello.so\nusr/include/hello.h\n"
        try write(files, in: directory)
    }

    public static func program(in directory: String) throws {
        var files = common("hello-prog")
        files["main.c"] = "#include <hello.h>\nint main(void) { hello_greet(\"hello-prog\"); return 0; }\n"
        files["Makefile"] = """
            all: hello-prog
            hello-prog: main.c
            \t$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $< -lhello
            install:
            \tinstall -D -m 755 hello-prog $(DESTDIR)/usr/bin/hello-prog

            """
        files["debian/control"] = """
            Source: hello-prog
            Section: misc
            Priority: optional
            Maintainer: Havel Tests <tests@example.org>
            Build-Depends: debhelper-compat (= 13), libhello-dev
            Standards-Version: 4.6.2

            Package: hello-prog
            Architecture: any
            Depends: ${shlibs:Depends}, ${misc:Depends}
            Description: greeting program
             A test program.

            """
        files["debian/rules"] = "#!/usr/bin/make -f\n%:\n\tdh $@\n"
        try write(files, in: directory)
    }

    /// `directory` made a git repository with one commit; its file:// URL.
    public static func gitRepository(_ directory: String) async throws -> String {
        let environment = ["GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"]
        for arguments in [["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "test"]] {
            _ = try await SystemProcesses().check(Command("git", ["-C", directory] + arguments, environment: environment))
        }
        return "file://" + directory
    }

    /// A flat deb-src repository in `repository` holding each source tree as a .dsc (dpkg-source -b) with its
    /// Sources and Release indices (apt-ftparchive); a project reads it as `file://<repository> ./`.
    public static func sourceRepository(of trees: [String], in repository: String) async throws {
        try FileManager.default.createDirectory(atPath: repository, withIntermediateDirectories: true)
        for tree in trees {
            _ = try await SystemProcesses().check(Command("dpkg-source", ["-b", tree], workingDirectory: repository))
        }
        let sources = try await SystemProcesses().check(Command("apt-ftparchive", ["sources", "."], workingDirectory: repository))
        try sources.standardOutput.write(toFile: repository + "/Sources", atomically: true, encoding: .utf8)
        let release = try await SystemProcesses().check(Command("apt-ftparchive", ["release", "."], workingDirectory: repository))
        try release.standardOutput.write(toFile: repository + "/Release", atomically: true, encoding: .utf8)
    }

    /// `directory` as a base64 tar.bz2 for `<archive>`.
    public static func archive(_ directory: String) async throws -> String {
        let file = directory + ".tar.bz2"
        _ = try await SystemProcesses().check(Command("tar", ["-c", "-j", "-f", file, "-C", directory, "."]))
        return try Data(contentsOf: URL(fileURLWithPath: file)).base64EncodedString()
    }
}
