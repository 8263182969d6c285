/// A size as ELBE writes it: `\d+(k|M|G|kB|MB|GB|kiB|MiB|GiB)?` (k, M, G and the *B forms are powers of
/// 1000; the *iB forms powers of 1024), or `remain` for partitions that take what is left.
public enum SizeSpec: Sendable, Hashable, Codable, CustomStringConvertible {
    case bytes(UInt64)
    case remain

    public static let units: [(suffix: String, factor: UInt64)] = [
        ("kiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30),
        ("kB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000),
        ("k", 1000), ("M", 1_000_000), ("G", 1_000_000_000),
    ]

    /// Parses a size; `allowRemain` accepts the word `remain`. Returns nil for anything else.
    public init?(parsing text: String, allowRemain: Bool = true) {
        let text = text.trimmingWhitespace()
        if text == "remain" {
            guard allowRemain else { return nil }
            self = .remain
            return
        }
        var digits = Substring(text)
        var factor: UInt64 = 1
        for unit in Self.units where text.hasSuffix(unit.suffix) {
            digits = text.dropLast(unit.suffix.count)
            factor = unit.factor
            break
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = UInt64(digits) else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: factor)
        guard !overflow else { return nil }
        self = .bytes(product)
    }

    public var byteCount: UInt64? {
        if case .bytes(let n) = self { return n }
        return nil
    }

    public var description: String {
        switch self {
        case .remain: "remain"
        case .bytes(let n): ByteCount.format(n)
        }
    }
}

public enum ByteCount {
    /// Human-readable binary size: `512 B`, `4 KiB`, `1.5 GiB`.
    public static func format(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var index = 0
        while value >= 1024, index < units.count - 1 {
            value /= 1024
            index += 1
        }
        if index == 0 { return "\(bytes) B" }
        let rounded = (value * 10).rounded() / 10
        if rounded == rounded.rounded() { return "\(Int(rounded)) \(units[index])" }
        return "\(rounded) \(units[index])"
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs, carriage returns and newlines.
    public func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        guard let start = firstIndex(where: { !isSpace($0) }),
              let end = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[start...end])
    }
}
