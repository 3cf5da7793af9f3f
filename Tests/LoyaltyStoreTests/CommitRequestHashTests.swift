import Foundation
import LoyaltyCore
@testable import LoyaltyStore
import Testing

/// The hand-written commit hash must equal the JSONEncoder one it replaced byte for byte: idempotency keys stored
/// before the change are matched against retries hashed after it.
@Suite("Commit request hash")
struct CommitRequestHashTests {
    static let alphabet: [String] = ["a", "Z", "0", "-", "_", ".", " ", "/", "\\", "\"", "\u{0}", "\u{1}", "\u{8}", "\u{9}",
                                     "\u{a}", "\u{c}", "\u{d}", "\u{1f}", "\u{7f}", "é", "€", "𝄞", "\u{2028}", "'", "{", ":"]

    static func text(_ random: inout LedgerOracleTests.SeededGenerator, maximumLength: Int = 12) -> String {
        let count = Int.random(in: 0...maximumLength, using: &random)
        return (0..<count).map { _ in alphabet.randomElement(using: &random)! }.joined()
    }

    static func integer(_ random: inout LedgerOracleTests.SeededGenerator) -> Int64 {
        switch Int.random(in: 0..<4, using: &random) {
        case 0: Int64.random(in: -10...10, using: &random)
        case 1: [Int64.min, Int64.max, 0, -1][Int.random(in: 0..<4, using: &random)]
        default: Int64.random(in: Int64.min...Int64.max, using: &random)
        }
    }

    @Test("equals the JSONEncoder hash over 2,000 random commits with odd characters and extreme numbers")
    func sameBytesAsTheEncoder() {
        var random = LedgerOracleTests.SeededGenerator(state: 20_261_203)
        for _ in 0..<2_000 {
            let lines = (0..<Int.random(in: 0...4, using: &random)).map { _ in
                BasketLine(lineID: Self.text(&random), sku: Self.text(&random), category: Self.text(&random),
                           quantity: Self.integer(&random), unitPriceMinor: Self.integer(&random),
                           discountMinor: Self.integer(&random))
            }
            let commit = POSCommit(
                terminalID: Self.text(&random), posTransactionID: Self.text(&random, maximumLength: 40),
                memberID: Self.integer(&random), basket: Basket(currency: Self.text(&random, maximumLength: 3), lines: lines),
                holdID: Bool.random(using: &random) ? nil : Self.integer(&random), redeemPoints: Self.integer(&random),
                purchasedAtMs: Self.integer(&random), purchasedAt: Date(timeIntervalSince1970: 1_800_000_000))
            #expect(commit.requestHash == requestHash("pos-commit", commit), "\(commit)")
        }
    }

    @Test("a commit that differs in any hashed field hashes differently; the resolved purchase time is not hashed")
    func fieldsThatCount() {
        let line = BasketLine(lineID: "1", sku: "s", category: "c", quantity: 1, unitPriceMinor: 100)
        let base = POSCommit(terminalID: "t", posTransactionID: "x", memberID: 1, basket: Basket(currency: "EUR", lines: [line]),
                             holdID: nil, redeemPoints: 0, purchasedAtMs: 0, purchasedAt: Date())
        var later = base
        later.purchasedAt = Date().addingTimeInterval(60)
        #expect(later.requestHash == base.requestHash)
        var changes: [POSCommit] = []
        for change in 0..<6 {
            var other = base
            switch change {
            case 0: other.terminalID = "u"
            case 1: other.memberID = 2
            case 2: other.holdID = 7
            case 3: other.redeemPoints = 10
            case 4: other.purchasedAtMs = 1
            default: other.basket.lines[0].discountMinor = 1
            }
            changes.append(other)
        }
        #expect(Set(changes.map(\.requestHash) + [base.requestHash]).count == 7)
    }
}
