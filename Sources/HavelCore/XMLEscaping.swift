/// Escaping for XML 1.0 text and attribute values, shared by every writer of XML (source.xml, the
/// licence report, check.xml). Characters XML 1.0 cannot hold are dropped, or shown as their Unicode
/// control picture (ESC → ␛) where a reader should still see that they were there.
public enum XMLEscaping {
    public enum Forbidden: Sendable { case drop, picture }

    /// `attribute` escapes quotes and keeps newlines and tabs as references; `quotes` escapes `"` and `'`
    /// in text too (for values that may end up in an attribute).
    public static func escape(_ text: String, attribute: Bool = false, quotes: Bool = false, forbidden: Forbidden = .drop) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"" where attribute || quotes: out += "&quot;"
            case "'" where quotes: out += "&apos;"
            case "\r": out += "&#13;"
            case "\n" where attribute: out += "&#10;"
            case "\t" where attribute: out += "&#9;"
            case "\t", "\n": out.unicodeScalars.append(scalar)
            default:
                let value = scalar.value
                if value < 0x20 || value == 0xFFFE || value == 0xFFFF {
                    guard forbidden == .picture else { continue }
                    out += value < 0x20 ? String(Unicode.Scalar(0x2400 + value)!) : "\u{FFFD}"
                } else if value == 0x7F && forbidden == .picture {
                    out += "\u{2421}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
