// Tests of PackageRelations: the relation fields read from a dpkg status, and their resolution to installed
// packages (alternatives, virtual packages, architectures, unresolvable clauses).

@testable import Debian
import Testing

/// A small status: `app` depends on an alternative whose first choice is missing, on a virtual package two
/// packages provide, on a package of another architecture and on one that is not installed.
let relationsStatus = """
Package: app
Status: install ok installed
Architecture: amd64
Version: 1.0-1
Maintainer: App Team <app@example.org>
Pre-Depends: libc6 (>= 2.36)
Depends: missing-first | libfallback:any (>= 1), mail-transport-agent, libmulti, not-installed (>= 3) [amd64], app

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>

Package: libfallback
Status: install ok installed
Architecture: amd64
Version: 1.2

Package: postfix
Status: install ok installed
Architecture: amd64
Version: 3.7
Provides: mail-transport-agent, default-mta (= 3.7)

Package: exim4
Status: install ok installed
Architecture: amd64
Version: 4.96
Provides: mail-transport-agent

Package: libmulti
Status: install ok installed
Architecture: i386
Version: 1

Package: libmulti
Status: install ok installed
Architecture: amd64
Version: 1

Package: removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1
Depends: libc6

"""

struct PackageRelationsTests {
    @Test func fieldsAreReadForInstalledPackagesOnly() {
        let relations = PackageRelations.parse(relationsStatus)
        #expect(relations.map(\.name) == ["app", "exim4", "libc6", "libfallback", "libmulti", "libmulti", "postfix"])
        let app = relations[0]
        #expect(app.maintainer == "App Team <app@example.org>")
        #expect(app.depends == [["libc6"], ["missing-first", "libfallback"], ["mail-transport-agent"], ["libmulti"], ["not-installed"], ["app"]])
        #expect(relations.first { $0.name == "postfix" }?.provides == ["mail-transport-agent", "default-mta"])
    }

    @Test func relationsResolveToInstalledPackages() {
        let relations = PackageRelations.parse(relationsStatus)
        let resolver = InstalledRelationResolver(relations)
        let names = resolver.dependencies(of: 0).map { "\(relations[$0].name):\(relations[$0].architecture)" }
        // libc6; the installed alternative; the first provider by position (exim4 sorts before postfix);
        // libmulti of app's own architecture; not-installed and app itself skipped.
        #expect(names == ["exim4:amd64", "libc6:amd64", "libfallback:amd64", "libmulti:amd64"])
    }

    @Test func aPackageWithoutRelationsHasNoDependencies() {
        let relations = PackageRelations.parse(relationsStatus)
        #expect(InstalledRelationResolver(relations).dependencies(of: 2).isEmpty)
    }
}
