import Testing
@testable import InitVM

/// The framing of console commands: the markers the shell types never contain the marker it prints,
/// and what the console adds (escapes, kernel messages) is taken out of the output.
struct GuestShellTests {
    @Test func typedMarkersDifferFromPrintedOnes() {
        #expect(GuestShell.split("HVB12X") == "HV\"\"B12X")
        #expect(!GuestShell.split("HVE3X").contains("HVE3X"))
    }

    @Test func consoleNoiseIsRemoved() {
        let raw = "\u{1B}[?2004lfirst line\n[   12.345678] loop0: detected capacity change\nsecond\u{1B}[0m line\n"
        #expect(GuestShell.cleaned(raw) == "first line\nsecond line\n")
        #expect(GuestShell.cleaned("[not a kernel line]\n") == "[not a kernel line]\n")
    }
}
