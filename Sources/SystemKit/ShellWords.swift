import HavelCore

/// Splits a command line into words the way a POSIX shell does, without any expansion: blanks
/// separate words; `'…'` keeps everything literally; `"…"` keeps everything except that a backslash
/// escapes `"`, `\`, `$` and `` ` ``; outside quotes a backslash escapes the next character.
public enum ShellWords {
    public static func split(_ line: String) throws(HavelError) -> [String] {
        var words: [String] = []
        var word = ""
        var inWord = false
        var iterator = Array(line).makeIterator()
        while let c = iterator.next() {
            switch c {
            case " ", "\t", "\n", "\r":
                if inWord { words.append(word); word = ""; inWord = false }
            case "'":
                inWord = true
                var closed = false
                while let d = iterator.next() {
                    if d == "'" { closed = true; break }
                    word.append(d)
                }
                guard closed else { throw HavelError(.invalidProject, "unterminated ' in \(quoted(line))") }
            case "\"":
                inWord = true
                var closed = false
                while let d = iterator.next() {
                    if d == "\"" { closed = true; break }
                    if d == "\\" {
                        guard let e = iterator.next() else { break }
                        if e == "\n" { continue }                     // line continuation
                        if !"\"\\$`".contains(e) { word.append("\\") }
                        word.append(e)
                        continue
                    }
                    word.append(d)
                }
                guard closed else { throw HavelError(.invalidProject, "unterminated \" in \(quoted(line))") }
            case "\\":
                inWord = true
                if let e = iterator.next(), e != "\n" { word.append(e) }
            default:
                inWord = true
                word.append(c)
            }
        }
        if inWord { words.append(word) }
        return words
    }

    static func quoted(_ s: String) -> String { "\"\(s)\"" }
}
