import Foundation
import LoyaltyCore

/// Text-format values for libpq parameters (`PipelineParameter.text`): array literals, bytea, timestamps. The
/// server parses them with the type's input function, so the rules are PostgreSQL's: an array element is
/// double-quoted with `\` and `"` escaped, and an unquoted `NULL` is SQL NULL.
enum PostgresTextLiteral {
    static func array(_ elements: [String?]) -> String {
        // Built as UTF-8 bytes: this runs for 19 arrays on every commit batch, and String appends by scalar were a
        // tenth of the server's CPU under load.
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(2 + elements.reduce(0) { $0 + ($1?.utf8.count ?? 4) + 3 })
        for (index, element) in elements.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            guard let element else {
                bytes.append(contentsOf: "NULL".utf8)
                continue
            }
            bytes.append(quote)
            for byte in element.utf8 {
                if byte == quote || byte == backslash { bytes.append(backslash) }
                bytes.append(byte)
            }
            bytes.append(quote)
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// bytea's hex input form.
    static func bytea(_ bytes: [UInt8]) -> String {
        "\\x" + HexDigits.lowercase(bytes)
    }

    /// RFC 3339 in UTC with milliseconds, which timestamptz's input reads exactly. The milliseconds are rounded
    /// from the Date (a till's `purchased_at_ms` comes back as a Double that may sit just below it) and written
    /// from the integer, so a stored time is never a millisecond early.
    static func timestamp(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1_000).rounded())
        let (seconds, fraction) = milliseconds.quotientAndRemainder(dividingBy: 1_000)
        let (wholeSeconds, millisecond) = fraction < 0 ? (seconds - 1, fraction + 1_000) : (seconds, fraction)
        let text = Date(timeIntervalSince1970: Double(wholeSeconds)).formatted(Date.ISO8601FormatStyle())  // …:SSZ
        let padded = String(millisecond + 1_000).dropFirst()
        return text.dropLast() + "." + padded + "Z"
    }
}
