import HavelCore
import SystemKit
import Testing

/// Splitting option strings (interpreter-opts, mkfs options) into words like a shell, without expansion.
@Suite struct ShellWordsTests {
    @Test func splitsLikeAShellWithoutExpansion() throws {
        let words = try ShellWords.split(#"  -m 2G -append "console=ttyAMA0,115200 root=/dev/mmcblk0p1"  -x 'a b $HOME' c\ d "q\"x\$y\n" "#)
        #expect(words == ["-m", "2G", "-append", "console=ttyAMA0,115200 root=/dev/mmcblk0p1", "-x", "a b $HOME", "c d", #"q"x$y\n"#])
        #expect(try ShellWords.split("") == [])
        #expect(try ShellWords.split("a '' b") == ["a", "", "b"])
        #expect(throws: HavelError.self) { try ShellWords.split("-append \"console=ttyS0") }
        #expect(throws: HavelError.self) { try ShellWords.split("-name 'x") }
    }
}
