import Debian
import Testing

private func compare(_ a: String, _ b: String) -> Int {
    guard let va = DebianVersion(a), let vb = DebianVersion(b) else {
        Issue.record("cannot parse \(a) or \(b)")
        return 0
    }
    let result = DebianVersion.compare(va, vb)
    return result < 0 ? -1 : (result > 0 ? 1 : 0)
}

@Suite struct DebianVersionTests {
    /// (a, b, sign of compare(a, b)), each checked as dpkg --compare-versions would answer.
    @Test(arguments: [
        ("1.0~rc1", "1.0", -1),
        ("1.0~rc1", "1.0~rc2", -1),
        ("1.0~beta", "1.0~alpha", 1),
        ("1:0.1", "2.0", 1),
        ("0:2.0", "2.0", 0),
        ("1.0-1", "1.0-1+b1", -1),
        ("2.30-1", "2.3-1", 1),
        ("2.3-1", "2.30-1", -1),
        ("1.2.3", "1.2.10", -1),
        ("1.0", "1.00", 0),
        ("1.0", "1.0-0", 0),
        ("01.0", "1.0", 0),
        ("1.0", "1.0-1", -1),
        ("1.0", "1.0.1", -1),
        ("1.0a", "1.0+", -1),       // letters sort before non-letters
        ("1.0+", "1.0a", 1),
        ("1.0", "1.0a", -1),
        ("1.0~", "1.0", -1),
        ("1.0~~", "1.0~~a", -1),    // the Debian policy example: ~~ < ~~a < ~ < (nothing) < a
        ("1.0~~a", "1.0~", -1),
        ("1.0~", "1.0", -1),
        ("1.0", "1.0a", -1),
        ("7.6p2-4", "7.6-0", 1),
        ("1.0+dfsg-1", "1.0-1", 1),
        ("2.36-9+deb12u10", "2.36-9+deb12u4", 1),
        ("2.36-9+deb12u4", "2.36-9", 1),
        ("5.2.15-2+b8", "5.2.15-2+b10", -1),
        ("1:1.2.13.dfsg-1", "1.2.13.dfsg-3", 1),
        ("1.2.3-1~bpo12+1", "1.2.3-1", -1),
        ("0.9", "0.10", -1),
        ("a", "b", -1),
        ("1.0-1.1", "1.0-1", 1),
        ("10", "9", 1),
        ("1:1.0-1", "1:1.0-1", 0),
        ("1.0-a", "1.0-1", 1),
    ])
    func dpkgOrdering(a: String, b: String, expected: Int) {
        #expect(compare(a, b) == expected, "\(a) vs \(b)")
        #expect(compare(b, a) == -expected, "\(b) vs \(a)")
    }

    @Test func comparableOperators() throws {
        let rc = try #require(DebianVersion("1.0~rc1"))
        let final = try #require(DebianVersion("1.0"))
        let zero = try #require(DebianVersion("0:1.0-0"))
        #expect(rc < final)
        #expect(final == zero)
        #expect(final.description == "1.0")
        let sorted = ["1.0-1", "1:0.1", "1.0", "1.0~rc1", "0.9", "1.0+b1", "1.0-1+b1"].compactMap(DebianVersion.init).sorted()
        #expect(sorted.map(\.description) == ["0.9", "1.0~rc1", "1.0", "1.0-1", "1.0-1+b1", "1.0+b1", "1:0.1"])
    }

    @Test func components() throws {
        let version = try #require(DebianVersion("1:2.30-1-2"))
        #expect(version.epoch == 1)
        #expect(version.upstream == "2.30-1")
        #expect(version.revision == "2")
        let plain = try #require(DebianVersion(" 5.2.15 "))
        #expect(plain.epoch == 0)
        #expect(plain.upstream == "5.2.15")
        #expect(plain.revision == "")
        #expect(DebianVersion("2:1:3")?.upstream == "1:3")
    }

    @Test(arguments: ["", "   ", "a:1.0", ":1.0", "1:", "1.0-", "-1", "1.0 2", "-1:1.0", "99999999999:1"])
    func invalidVersions(text: String) {
        #expect(DebianVersion(text) == nil)
    }

    @Test(arguments: [
        ("2.36-9+deb12u10", "2.*", true),
        ("12.0", "2.*", false),
        ("2.36-9", "2.36-9", true),
        ("5.2.15-2+b8", "5.2.15", false),     // the whole string must match
        ("5.2.15-2+b8", "5.2.15*", true),
        ("1.0", "?.0", true),
        ("10.0", "?.0", false),
        ("1.1-3", "1.[0-2]*", true),
        ("1.3-3", "1.[0-2]*", false),
        ("3.0", "[!1]*", true),
        ("1.0", "[!1]*", false),
        ("1:2.3", "1:*", true),
        ("2.3", "1:*", false),
        ("1.0[", "1.0[", true),               // unclosed [ is literal
        ("1.0]", "1.0[]]", true),             // ] first in a set is a member
        ("1.0~rc1-1", "*~rc*", true),
        ("xaxxb", "*a*b", true),
        ("xaxxbc", "*a*b", false),
        ("", "*", true),
        ("", "a*", false),
        ("1.0+b1", "1.0+b?", true),
        ("1.0.b1", "1.0+b?", false),           // + is literal, not a regex
        ("anything", "***", true),
    ])
    func globMatching(version: String, glob: String, matches: Bool) {
        #expect(DebianVersion.matches(version, glob: glob) == matches, "\(version) ~ \(glob)")
    }
}
