/// A shell pattern with Python fnmatch semantics: `*`, `?`, `[seq]`, `[!seq]`, ranges `a-z`; an unclosed `[`
/// is literal; no backslash escapes. Used for path components in a tree and for pkg-list version globs.
public struct GlobPattern: Sendable {
    enum Token: Sendable {
        case scalar(Unicode.Scalar)
        case any
        case star
        case set([ClosedRange<Unicode.Scalar>], negated: Bool)
    }

    let tokens: [Token]

    public static func isMagic(_ pattern: String) -> Bool {
        pattern.contains { $0 == "*" || $0 == "?" || $0 == "[" }
    }

    public init(_ pattern: String) {
        let scalars = Array(pattern.unicodeScalars)
        var tokens: [Token] = []
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            index += 1
            switch scalar {
            case "*":
                if case .star? = tokens.last { continue }
                tokens.append(.star)
            case "?":
                tokens.append(.any)
            case "[":
                var end = index
                if end < scalars.count && scalars[end] == "!" { end += 1 }
                if end < scalars.count && scalars[end] == "]" { end += 1 }
                while end < scalars.count && scalars[end] != "]" { end += 1 }
                guard end < scalars.count else {
                    tokens.append(.scalar("["))
                    continue
                }
                var body = Array(scalars[index..<end])
                index = end + 1
                let negated = body.first == "!"
                if negated { body.removeFirst() }
                var ranges: [ClosedRange<Unicode.Scalar>] = []
                var position = 0
                while position < body.count {
                    if position + 2 < body.count && body[position + 1] == "-" {
                        if body[position] <= body[position + 2] { ranges.append(body[position]...body[position + 2]) }
                        position += 3
                    } else {
                        ranges.append(body[position]...body[position])
                        position += 1
                    }
                }
                tokens.append(.set(ranges, negated: negated))
            default:
                tokens.append(.scalar(scalar))
            }
        }
        self.tokens = tokens
    }

    public func matches(_ name: String) -> Bool {
        let text = Array(name.unicodeScalars)
        var token = 0
        var position = 0
        var starToken = -1
        var starPosition = 0
        while position < text.count {
            if token < tokens.count {
                switch tokens[token] {
                case .star:
                    starToken = token
                    starPosition = position
                    token += 1
                    continue
                case .any:
                    token += 1
                    position += 1
                    continue
                case .scalar(let scalar) where scalar == text[position]:
                    token += 1
                    position += 1
                    continue
                case .set(let ranges, let negated) where ranges.contains(where: { $0.contains(text[position]) }) != negated:
                    token += 1
                    position += 1
                    continue
                default:
                    break
                }
            }
            guard starToken >= 0 else { return false }
            token = starToken + 1
            starPosition += 1
            position = starPosition
        }
        while token < tokens.count, case .star = tokens[token] { token += 1 }
        return token == tokens.count
    }
}
