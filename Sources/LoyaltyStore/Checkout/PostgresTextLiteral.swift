import Foundation

/// Text-format values for libpq parameters (`PipelineParameter.text`): array literals, bytea, timestamps. The
/// server parses them with the type's input function, so the rules are PostgreSQL's: an array element is
/// double-quoted with `\` and `"` escaped, and an unquoted `NULL` is SQL NULL.
enum PostgresTextLiteral {
    static func array(_ elements: [String?]) -> String {
        var text = "{"
        for (index, element) in elements.enumerated() {
            if index > 0 { text.append(",") }
            guard let element else {
                text.append("NULL")
                continue
            }
            text.append("\"")
            for character in element.unicodeScalars {
                if character == "\\" || character == "\"" { text.append("\\") }
                text.unicodeScalars.append(character)
            }
            text.append("\"")
        }
        text.append("}")
        return text
    }

    static func array(_ elements: [Int64?]) -> String { array(elements.map { $0.map(String.init) }) }

    /// bytea's hex input form.
    static func bytea(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = Array("\\x".utf8)
        text.reserveCapacity(2 + bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// RFC 3339 in UTC with milliseconds, which timestamptz's input reads exactly.
    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
