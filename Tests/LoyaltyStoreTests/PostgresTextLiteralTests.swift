import Foundation
import LoyaltyCore
@testable import LoyaltyStore
import LoyaltyTestSupport
import PostgresPipeline
import Testing

@Suite("Text-format parameters for libpq")
struct PostgresTextLiteralTests {
    @Test("timestamps written by hand equal Foundation's ISO 8601 form with milliseconds (20,000 random instants)")
    func timestampMatchesFoundation() {
        var generator = SystemRandomNumberGenerator()
        // From 1600 on: before the Gregorian reform Foundation writes Julian dates, PostgreSQL (and this) proleptic
        // Gregorian ones; the database round trip below covers year 1.
        let edges: [Int64] = [0, -1, 1, 951_782_400_000, 951_868_799_999, 4_107_542_400_000, -11_676_096_000_000,
                              253_402_300_799_999, 1_764_756_000_999]
        let instants = edges + (0..<20_000).map { _ in Int64.random(in: -11_676_096_000_000...253_402_300_799_999, using: &generator) }
        // The form the server wrote before: Foundation's whole seconds, then the integer milliseconds.
        func reference(_ milliseconds: Int64) -> String {
            let (seconds, fraction) = milliseconds.quotientAndRemainder(dividingBy: 1_000)
            let (whole, millisecond) = fraction < 0 ? (seconds - 1, fraction + 1_000) : (seconds, fraction)
            let text = Date(timeIntervalSince1970: Double(whole)).formatted(Date.ISO8601FormatStyle())
            return text.dropLast() + "." + String(millisecond + 1_000).dropFirst() + "Z"
        }
        for milliseconds in instants {
            let date = Date(timeIntervalSince1970: Double(milliseconds) / 1_000)
            #expect(PostgresTextLiteral.timestamp(date) == reference(milliseconds), "\(milliseconds)")
        }
        for days: Int64 in [-719_162, -1, 0, 59, 60, 11_016, 2_932_896] {
            let (year, month, day) = RFC3339.civil(daysSince1970: days)
            #expect(Int64(RFC3339.daysFromCivil(year: Int(year), month: Int(month), day: Int(day))) == days)
        }
    }

    @Test("array literals, bytea and hand-written line JSON read back exactly in PostgreSQL")
    func roundTrip() async throws {
        try await TestServices.withEmptyDatabase { url, _ in
            let writer = try await CheckoutWriter.connect(url: url, connections: 1, logger: TestServices.logger)
            let elements: [String?] = ["plain", "", nil, "NULL", "a,b", "{braces}", "quote \" and \\ backslash", "ünïcødé ✦", " spaced "]
            let result = try await writer.pool.execute("SELECT array_to_json($1::text[])::text", [PostgresTextLiteral.array(elements)])
            let decoded = try JSONSerialization.jsonObject(with: Data(try #require(result.scalar).utf8)) as? [Any]
            #expect(decoded?.map { $0 as? String } == elements)

            let bytes: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF]
            let hex = try await writer.pool.execute(
                "SELECT encode(($1::bytea[])[1], 'hex')", [PostgresTextLiteral.array([PostgresTextLiteral.bytea(bytes)])])
            #expect(hex.scalar == "00017f80ff")

            let lines = [CheckoutLine(lineID: "A \"1\"\n\\", quantity: 2, paidMinor: 1_999, award: 20),
                         CheckoutLine(lineID: "ß", quantity: 1, paidMinor: 0, award: 0)]
            let json = CheckoutWriter.linesJSON(lines)
            #expect(try JSONDecoder().decode([CheckoutLine].self, from: Data(json.utf8)) == lines)
            #expect(try JSONDecoder().decode(String.self, from: Data(JSONText.quoted("tab\there \u{1}").utf8)) == "tab\there \u{1}")

            // Timestamps keep the till's milliseconds exactly, also where the Double sits just below them.
            for milliseconds: Int64 in [1_764_756_000_001, 1_764_756_000_123, 1_764_756_000_999, 1_000, 0, -1,
                                        -62_135_596_800_000, 253_402_300_799_999, 951_782_400_000] {
                let date = Date(timeIntervalSince1970: Double(milliseconds) / 1_000)
                let read = try await writer.pool.execute(
                    "SELECT (extract(epoch FROM $1::timestamptz) * 1000)::bigint", [PostgresTextLiteral.timestamp(date)])
                #expect(read.scalar == String(milliseconds), "\(PostgresTextLiteral.timestamp(date))")
            }
            let stored = try await writer.pool.execute(
                "SELECT (($1::jsonb[])[1] -> 0 ->> 'line_id')", [PostgresTextLiteral.array([json])])
            #expect(stored.scalar == "A \"1\"\n\\")
            await writer.close()
        }
    }
}
