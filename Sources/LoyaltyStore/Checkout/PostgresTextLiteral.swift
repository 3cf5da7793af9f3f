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

    /// RFC 3339 in UTC with milliseconds (`2026-12-03T17:54:07.123Z`), which timestamptz's input reads exactly.
    /// The milliseconds are rounded from the Date (a till's `purchased_at_ms` comes back as a Double that may sit
    /// just below it) and written from the integer, so a stored time is never a millisecond early. Written by
    /// hand from the civil date (Foundation's ISO 8601 formatter was 2 % of the server's CPU under commit load:
    /// three timestamps per commit). Years 1–9999, as the formatter wrote them.
    static func timestamp(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1_000).rounded())
        let (seconds, millisecond) = floorDivision(milliseconds, 1_000)
        let (days, secondOfDay) = floorDivision(seconds, 86_400)
        let (year, month, day) = RFC3339.civil(daysSince1970: days)
        precondition((1...9_999).contains(year), "timestamp year \(year) out of range")
        var bytes = [UInt8]()
        bytes.reserveCapacity(24)
        func digits(_ value: Int64, _ count: Int) {
            var divisor: Int64 = 1
            for _ in 1..<count { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(year, 4); bytes.append(UInt8(ascii: "-")); digits(month, 2); bytes.append(UInt8(ascii: "-")); digits(day, 2)
        bytes.append(UInt8(ascii: "T"))
        digits(secondOfDay / 3_600, 2); bytes.append(UInt8(ascii: ":")); digits(secondOfDay / 60 % 60, 2)
        bytes.append(UInt8(ascii: ":")); digits(secondOfDay % 60, 2)
        bytes.append(UInt8(ascii: ".")); digits(millisecond, 3); bytes.append(UInt8(ascii: "Z"))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Quotient and remainder rounded toward minus infinity (the remainder is never negative).
    private static func floorDivision(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
        return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
    }
}
