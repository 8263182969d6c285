import HavelCore
import Foundation

extension BootChecker {
    /// check.xml in JUnit format: one `<testcase>` per check (the check script too); a failed one carries a
    /// `<failure>` with the message and the serial transcript's (or the script output's) tail. Every check's tail also goes to `<system-out>`.
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
                body += escape(result.message + (result.transcriptTail.isEmpty ? "" : "\n\n\(result.tailSource ?? "serial console") (last lines):\n" + result.transcriptTail))
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

    /// Text and attribute values; control characters from a terminal stay visible as control pictures.
    static func escape(_ text: String) -> String {
        XMLEscaping.escape(text, quotes: true, forbidden: .picture)
    }
}
