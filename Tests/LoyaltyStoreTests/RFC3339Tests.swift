import Foundation
import LoyaltyStore
import Testing

@Suite("RFC 3339 timestamps")
struct RFC3339Tests {
    @Test("valid timestamps: zones, fractions, leap days")
    func valid() throws {
        #expect(RFC3339.parse("1970-01-01T00:00:00Z") == Date(timeIntervalSince1970: 0))
        #expect(RFC3339.parse("2025-06-01T02:00:00+02:00") == RFC3339.parse("2025-06-01T00:00:00Z"))
        #expect(RFC3339.parse("2025-06-01T00:00:00-01:30") == RFC3339.parse("2025-06-01T01:30:00Z"))
        #expect(RFC3339.parse("2024-02-29T23:59:59.250Z")?.timeIntervalSince1970 == 1_709_251_199.25)
        #expect(RFC3339.parse("2000-02-29T00:00:00Z") != nil)
        // Agrees with Foundation on valid input.
        let foundation = try Date.ISO8601FormatStyle().parse("2031-12-31T12:34:56Z")
        #expect(RFC3339.parse("2031-12-31T12:34:56Z") == foundation)
    }

    @Test("out-of-range fields and malformed text are refused, not rolled over", arguments: [
        "2024-01-01T12:99:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:60Z", "2024-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "2024-01-01T00:00:00",
        "2024-01-01 00:00:00Z", "2024-01-01T00:00:00+2:00", "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.1234567890Z", "0000-01-01T00:00:00Z", "2024-1-01T00:00:00Z", "", "2024-01-01T00:00:00Zjunk",
    ])
    func invalid(_ text: String) {
        #expect(RFC3339.parse(text) == nil)
    }
}
