/// Splits a SQL script into single statements.
///
/// postgres-nio speaks only the extended query protocol, which takes one statement per call, so a migration
/// file is cut at top-level semicolons. Quoted strings, quoted identifiers, dollar-quoted bodies (functions,
/// `DO` blocks) and comments are kept whole.
public enum SQLScript {
    public enum SplitError: Error, Equatable, CustomStringConvertible {
        case unterminated(what: String, line: Int)

        public var description: String {
            switch self {
            case .unterminated(let what, let line): "unterminated \(what) starting on line \(line)"
            }
        }
    }

    public struct Statement: Equatable, Sendable {
        public var text: String
        /// 1-based line of the statement's first character, for error messages.
        public var line: Int
    }

    public static func split(_ script: String) throws(SplitError) -> [Statement] {
        let chars = Array(script.unicodeScalars)
        var statements: [Statement] = []
        var current = String.UnicodeScalarView()
        var currentLine = 1
        var line = 1
        var index = 0
        var hasContent = false

        func flush() {
            let text = String(current).trimmingWhitespace()
            if hasContent, !text.isEmpty { statements.append(Statement(text: text, line: currentLine)) }
            current.removeAll()
            hasContent = false
        }
        func append(_ scalar: Unicode.Scalar) {
            if scalar == "\n" { line += 1 }
            if !hasContent, !scalar.properties.isWhitespace { hasContent = true; currentLine = line }
            current.append(scalar)
        }
        func startsWith(_ pattern: [Unicode.Scalar], at position: Int) -> Bool {
            guard position + pattern.count <= chars.count else { return false }
            return Array(chars[position..<position + pattern.count]) == pattern
        }

        while index < chars.count {
            let scalar = chars[index]
            switch scalar {
            case "-" where startsWith(["-", "-"], at: index):
                // Line comment: skipped, the newline kept.
                while index < chars.count, chars[index] != "\n" { index += 1 }
            case "/" where startsWith(["/", "*"], at: index):
                let startLine = line
                var depth = 0
                repeat {
                    if startsWith(["/", "*"], at: index) { depth += 1; index += 2; continue }
                    if startsWith(["*", "/"], at: index) { depth -= 1; index += 2; continue }
                    if chars[index] == "\n" { line += 1 }
                    index += 1
                } while depth > 0 && index < chars.count
                if depth > 0 { throw .unterminated(what: "block comment", line: startLine) }
            case "'", "\"":
                let startLine = line
                append(scalar)
                index += 1
                var closed = false
                while index < chars.count {
                    let c = chars[index]
                    append(c)
                    index += 1
                    if c == scalar {
                        // A doubled quote is an escaped quote, not the end.
                        if index < chars.count, chars[index] == scalar { append(chars[index]); index += 1; continue }
                        closed = true
                        break
                    }
                }
                if !closed { throw .unterminated(what: scalar == "'" ? "string" : "quoted identifier", line: startLine) }
            case "$":
                if let tag = dollarTag(chars, at: index) {
                    let startLine = line
                    for c in tag { append(c) }
                    index += tag.count
                    var closed = false
                    while index < chars.count {
                        if startsWith(tag, at: index) {
                            for c in tag { append(c) }
                            index += tag.count
                            closed = true
                            break
                        }
                        append(chars[index])
                        index += 1
                    }
                    if !closed { throw .unterminated(what: "dollar-quoted body \(String(String.UnicodeScalarView(tag)))", line: startLine) }
                } else {
                    append(scalar)
                    index += 1
                }
            case ";":
                flush()
                index += 1
            default:
                append(scalar)
                index += 1
            }
        }
        flush()
        return statements
    }

    /// `$$` or `$tag$` at `position`, where tag is an identifier; `$1` (a parameter) is not a tag.
    private static func dollarTag(_ chars: [Unicode.Scalar], at position: Int) -> [Unicode.Scalar]? {
        var end = position + 1
        while end < chars.count {
            let c = chars[end]
            if c == "$" { return Array(chars[position...end]) }
            let isIdentifier = c == "_" || c.properties.isAlphabetic || (end > position + 1 && ("0"..."9").contains(c))
            if !isIdentifier { return nil }
            end += 1
        }
        return nil
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
