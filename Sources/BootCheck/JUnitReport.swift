import Foundation

extension BootChecker {
    /// check.xml in JUnit format: one `<testcase>` per check; a failed one carries a `<failure>` with
    /// the message and the serial transcript's tail. Every check's tail also goes to `<system-out>`.
    public static func junitXML(_ results: [CheckResult], suite: String) -> String {
        let failures = results.filter { !$0.passed }.count
        let total = results.reduce(0) { $0 + $1.seconds }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<testsuites name=\"\(escape(suite))\" tests=\"\(results.count)\" failures=\"\(failures)\" errors=\"0\" time=\"\(seconds(total))\">\n"
        xml += "  <testsuite name=\"\(escape(suite))\" tests=\"\(results.count)\" failures=\"\(failures)\" errors=\"0\" skipped=\"0\" time=\"\(seconds(total))\">\n"
        for result in results {
            let head = "    <testcase classname=\"\(escape(suite))\" name=\"\(escape(result.name))\" time=\"\(seconds(result.seconds))\""
            var body = ""
            if !result.passed {
                let firstLine = result.message.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
                body += "      <failure type=\"BootCheckFailure\" message=\"\(escape(firstLine))\">"
                body += escape(result.message + (result.transcriptTail.isEmpty ? "" : "\n\nserial console (last lines):\n" + result.transcriptTail))
                body += "</failure>\n"
            }
            if !result.transcriptTail.isEmpty {
                body += "      <system-out>\(escape(result.transcriptTail))</system-out>\n"
            }
            xml += body.isEmpty ? head + "/>\n" : head + ">\n" + body + "    </testcase>\n"
        }
        xml += "  </testsuite>\n</testsuites>\n"
        return xml
    }

    static func seconds(_ value: Double) -> String { String(format: "%.3f", value) }

    /// Escapes for XML text and attribute values. Characters XML 1.0 cannot hold (most C0 controls,
    /// e.g. ESC from a terminal) become their visible Unicode "control picture" (␛).
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n": out.unicodeScalars.append(scalar)
            case "\r": out += "&#13;"
            default:
                let v = scalar.value
                if v < 0x20 {
                    out.unicodeScalars.append(Unicode.Scalar(0x2400 + v)!)
                } else if v == 0x7F {
                    out += "\u{2421}"
                } else if v == 0xFFFE || v == 0xFFFF {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
