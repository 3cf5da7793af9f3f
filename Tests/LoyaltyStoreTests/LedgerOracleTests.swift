import Foundation
import LoyaltyCore
import LoyaltyStore
import LoyaltyTestSupport
import Testing

/// The pure `LedgerModel` is the specification; the SQL functions must agree with it operation by operation:
/// the same successes, the same refusals, the same balances and the same lot remainders.
@Suite("SQL ledger against the pure model")
struct LedgerOracleTests {
    /// SplitMix64: a seeded generator, so a failing sequence can be replayed.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func outcome(_ error: any Error) -> String {
        switch error {
        case let error as LedgerError: error.code
        case let error as LedgerStoreError: error.code
        default: "unexpected: \(error)"
        }
    }

    @Test("400 random operations over 3 members: same outcomes, balances and lots", arguments: [UInt64(7), 2_024])
    func agreesWithModel(seed: UInt64) async throws {
        try await withLedger { f in
            var random = SeededGenerator(state: seed)
            var model = LedgerModel()
            var members: [Int64] = []
            for _ in 0..<3 {
                let id = try await f.newMember()
                _ = model.addMember(id: id)
                members.append(id)
            }
            // Model ids → SQL ids.
            var entries: [Int64: Int64] = [:]
            var holds: [Int64: Int64] = [:]
            var lots: [Int64: Int64] = [:]
            var accruals: [Int64] = []
            var redemptions: [Int64] = []
            var activeHolds: [Int64] = []
            let now = Date()
            let farFuture = now.addingTimeInterval(86_400 * 365)

            for step in 0..<400 {
                let member = members.randomElement(using: &random)!
                let unit: LedgerUnit = Int.random(in: 0..<5, using: &random) == 0 ? .cashbackMinor : .points
                let amount = Int64.random(in: -2...300, using: &random)
                let key = f.key()
                var modelResult: Result<LedgerEntry, any Error>
                var sqlResult: Result<LedgerReceipt, any Error>
                let choice = Int.random(in: 0..<8, using: &random)
                switch choice {
                case 0, 1:
                    // Pending (return window far away) or available at once; some never expire.
                    let pending = Bool.random(using: &random)
                    let availableAt = pending ? now.addingTimeInterval(86_400 * 14) : now
                    let expiresAt: Date? = Bool.random(using: &random) ? farFuture.addingTimeInterval(Double(step)) : nil
                    modelResult = Result { try model.accrue(member: member, unit: unit, amount: amount, availableAt: availableAt, expiresAt: expiresAt, now: now) }
                    sqlResult = await Result(catching: { try await f.ledger.accrue(
                        AccrualRequest(memberID: member, unit: unit, amount: amount, availableAt: availableAt,
                                       expiresAt: expiresAt, occurredAt: now, actor: "oracle"), key: key) })
                case 2:
                    modelResult = Result { try model.hold(member: member, unit: unit, amount: amount, expiresAt: farFuture) }
                    sqlResult = await Result(catching: { try await f.ledger.hold(
                        HoldRequest(memberID: member, unit: unit, amount: amount, expiresAt: farFuture, actor: "oracle"), key: key) })
                case 3:
                    let hold = activeHolds.randomElement(using: &random) ?? 999_999
                    modelResult = Result { try model.release(holdID: hold) }
                    sqlResult = await Result(catching: { try await f.ledger.release(holdID: holds[hold] ?? 999_999, actor: "oracle", key: key) })
                case 4:
                    let useHold = Bool.random(using: &random) ? activeHolds.randomElement(using: &random) : nil
                    let holdMember = useHold.flatMap { model.hold(id: $0) }
                    let redeemMember = holdMember?.member ?? member
                    let redeemUnit = holdMember?.unit ?? unit
                    modelResult = Result { try model.redeem(member: redeemMember, unit: redeemUnit, amount: amount, holdID: useHold) }
                    sqlResult = await Result(catching: { try await f.ledger.redeem(
                        RedemptionRequest(memberID: redeemMember, unit: redeemUnit, amount: amount,
                                          holdID: useHold.map { holds[$0]! }, occurredAt: now, actor: "oracle"), key: key) })
                case 5:
                    guard let original = accruals.randomElement(using: &random) else { continue }
                    let part = Int64.random(in: 1...120, using: &random)
                    modelResult = Result { try model.reverseAccrual(entryID: original, amount: part) }
                    sqlResult = await Result(catching: { try await f.ledger.reverse(
                        ReversalRequest(originalEntryID: entries[original]!, amount: part, occurredAt: now, actor: "oracle"), key: key) })
                case 6:
                    guard let original = redemptions.randomElement(using: &random) else { continue }
                    let part = Int64.random(in: 1...120, using: &random)
                    modelResult = Result { try model.reverseRedemption(entryID: original, amount: part) }
                    sqlResult = await Result(catching: { try await f.ledger.reverse(
                        ReversalRequest(originalEntryID: entries[original]!, amount: part, occurredAt: now, actor: "oracle"), key: key) })
                default:
                    let delta = Int64.random(in: -150...150, using: &random)
                    modelResult = Result { try model.adjust(member: member, unit: unit, delta: delta, reason: "oracle", actor: "oracle", now: now) }
                    sqlResult = await Result(catching: { try await f.ledger.adjust(
                        AdjustmentRequest(memberID: member, unit: unit, delta: delta, reason: "oracle", actor: "oracle"), key: key) })
                }

                switch (modelResult, sqlResult) {
                case (.success(let entry), .success(let receipt)):
                    entries[entry.id] = receipt.entryId
                    if let lot = entry.lotID, let sqlLot = receipt.lotId { lots[lot] = sqlLot }
                    switch entry.kind {
                    case .accrual: accruals.append(entry.id)
                    case .redemption:
                        redemptions.append(entry.id)
                        if let hold = entry.holdID { activeHolds.removeAll { $0 == hold } }
                        #expect(receipt.consumed?.map(\.amount) == entry.consumption.map(\.amount), "step \(step)")
                    case .hold:
                        holds[entry.holdID!] = receipt.holdId!
                        activeHolds.append(entry.holdID!)
                    case .release: activeHolds.removeAll { $0 == entry.holdID }
                    default: break
                    }
                    if entry.kind == .reversal, choice == 5 { #expect(receipt.unrecovered == entry.unrecoveredAmount, "step \(step)") }
                    let expected = model.balances(member: entry.member, unit: entry.unit)
                    #expect(
                        receipt.balances == MemberBalances(available: expected.available, pending: expected.pending, held: expected.held),
                        "step \(step) \(entry.kind)")
                case (.failure(let modelError), .failure(let sqlError)):
                    #expect(Self.outcome(modelError) == Self.outcome(sqlError), "step \(step)")
                case (.success(let entry), .failure(let error)):
                    Issue.record("step \(step): model did \(entry.kind), SQL refused: \(error)")
                    return
                case (.failure(let error), .success(let receipt)):
                    Issue.record("step \(step): model refused (\(error)), SQL did entry \(receipt.entryId)")
                    return
                }
            }

            #expect(model.checkInvariants().isEmpty)
            for member in members {
                for modelLot in model.lots(member: member) {
                    guard let sqlLot = lots[modelLot.id] else { continue }
                    let rows = try await f.client.query("SELECT remaining_amount FROM lots WHERE lot_id = \(sqlLot)")
                    for try await remaining in rows.decode(Int64.self) {
                        #expect(remaining == modelLot.remaining, "lot \(modelLot.id)")
                    }
                }
            }
            #expect(try await f.audit().isClean)
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
