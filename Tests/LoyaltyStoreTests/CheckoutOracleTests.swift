import Foundation
import LoyaltyCore
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

/// The checkout seam has two implementations; the SQL one is production and the in-memory one (on `LedgerModel`)
/// is what the policy's unit tests run on. Both get the same random checkout sequences through the same
/// `CheckoutLedger` calls, and must give the same answer to every call (status and code of a refusal; amounts,
/// balances, tier changes, replay flags and the member's row of a success) and leave every member with the same
/// balances, tier and ledger version after every step.
///
/// Not compared: entry and hold ids (sequences and a random source in SQL; only whether an entry id is there),
/// and a hold's `expiresAtMs` beyond a tolerance (two clocks).
@Suite("Checkout ledger: PostgreSQL against the in-memory model")
struct CheckoutOracleTests {
    typealias SeededGenerator = LedgerOracleTests.SeededGenerator

    static let tiers: [InMemoryCheckoutLedger.Tier] = [
        .base,
        .init(code: "silver", name: "Silver", rank: 1, qualificationSpendMinor: 60_000, qualificationWindowDays: 365),
        .init(code: "gold", name: "Gold", rank: 2, qualificationSpendMinor: 180_000, qualificationWindowDays: 365),
    ]
    static let terminals = ["till-a", "till-b"]
    static let steps = 300

    /// One call of the seam. Hold ids differ between the two ledgers, so each gets its own variant of a request.
    enum Call: Sendable {
        case commits([(POSCommit, POSCommitPricing)])
        case hold(POSHold)
        case cancel(terminalID: String, posTransactionID: String)
        case refund(POSRefund)
        case heldID(terminalID: String, posTransactionID: String)
    }

    struct Sent: Sendable {
        var label: String
        var sql: Call
        var memory: Call
    }

    /// One answer, as compared: `text` holds everything that must be equal.
    struct Answer {
        var text: String
        var holdID: Int64?
        var expiresAtMs: Int64?
        var member: CheckoutMemberRow?
        var failed: Bool
    }

    struct HoldRef {
        var terminalID: String
        var posTransactionID: String
        var memberID: Int64
        var points: Int64
        var sqlID: Int64
        var memoryID: Int64
    }

    struct Purchase {
        var terminalID: String
        var posTransactionID: String
        var memberID: Int64
        var lines: [CheckoutLine]
    }

    // MARK: Running a call

    static func run(_ call: Call, on ledger: any CheckoutLedger) async -> [Answer] {
        switch call {
        case .commits(let items):
            return await ledger.commitBatch(items, deadline: nil).map { result in
                switch result {
                case .success(let answer):
                    let r = answer.result
                    let tier = r.tierChange.map { "\($0.from)>\($0.to) (\($0.reason))" } ?? "-"
                    let lines = r.lines.map { "\($0.lineID)/\($0.quantity)/\($0.paidMinor)/\($0.award)" }.joined(separator: ",")
                    return Answer(
                        text: "commit awarded=\(r.awarded) redeemed=\(r.redeemed) unit=\(r.unit.rawValue) rules=\(r.rulesVersion ?? "-") "
                            + "tier=\(tier) points=\(text(r.points)) accrual=\(r.accrualEntryId != 0) redemption=\(r.redemptionEntryId != 0) "
                            + "lines=\(lines) replayed=\(r.replayed) | \(text(answer.member))",
                        member: answer.member, failed: false)
                case .failure(let error):
                    return Answer(text: "error \(error.code)", failed: true)
                }
            }
        case .hold(let request):
            do throws(LedgerStoreError) {
                let (r, member) = try await ledger.hold(request, deadline: nil)
                return [Answer(text: "hold balances=\(text(r.balances)) replayed=\(r.replayed) | \(text(member))",
                               holdID: r.holdId, expiresAtMs: r.expiresAtMs, member: member, failed: false)]
            } catch {
                return [Answer(text: "error \(error.code)", failed: true)]
            }
        case .cancel(let terminalID, let posTransactionID):
            do throws(LedgerStoreError) {
                let (r, member) = try await ledger.cancel(terminalID: terminalID, posTransactionID: posTransactionID, deadline: nil)
                return [Answer(
                    text: "cancel \(r.cancelled) member=\(r.memberId) reversed=\(r.awardReversed) restored=\(r.pointsRestored) "
                        + "points=\(text(r.points)) replayed=\(r.replayed) | \(text(member))",
                    member: member, failed: false)]
            } catch {
                return [Answer(text: "error \(error.code)", failed: true)]
            }
        case .refund(let request):
            do throws(LedgerStoreError) {
                let (r, member) = try await ledger.refund(request, deadline: nil)
                return [Answer(
                    text: "refund reversed=\(r.awardReversed) restored=\(r.pointsRestored) unit=\(r.unit.rawValue) "
                        + "refunded=\(r.refundedMinor) unrecovered=\(r.awardUnrecovered) points=\(text(r.points)) "
                        + "replayed=\(r.replayed) | \(text(member))",
                    member: member, failed: false)]
            } catch {
                return [Answer(text: "error \(error.code)", failed: true)]
            }
        case .heldID(let terminalID, let posTransactionID):
            do throws(LedgerStoreError) {
                let held = try await ledger.heldID(terminalID: terminalID, posTransactionID: posTransactionID)
                return [Answer(text: "held \(held != nil)", holdID: held, failed: false)]
            } catch {
                return [Answer(text: "error \(error.code)", failed: true)]
            }
        }
    }

    static func text(_ balances: MemberBalances) -> String { "\(balances.available)/\(balances.pending)/\(balances.held)" }

    static func text(_ row: CheckoutMemberRow) -> String {
        text(memberID: row.memberID, tierCode: row.tierCode, status: row.status, points: row.points, cashback: row.cashbackMinor,
             version: row.ledgerVersion)
    }

    static func text(
        memberID: Int64, tierCode: String, status: String, points: MemberBalances, cashback: MemberBalances, version: Int64
    ) -> String {
        "member \(memberID) tier=\(tierCode) status=\(status) points=\(text(points)) cashback=\(text(cashback)) version=\(version)"
    }

    /// Every member's tier, version and balances in PostgreSQL, in the same text as `text(_ row:)`.
    static func sqlMembers(_ client: PostgresClient) async throws -> [String] {
        let rows = try await client.query(
            """
            SELECT m.member_id, m.ledger_version, t.code, m.status,
                   coalesce(sum(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'available'), 0)::int8,
                   coalesce(sum(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'pending'), 0)::int8,
                   coalesce(sum(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'held'), 0)::int8,
                   coalesce(sum(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'available'), 0)::int8,
                   coalesce(sum(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'pending'), 0)::int8,
                   coalesce(sum(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'held'), 0)::int8
            FROM members m JOIN tiers t ON t.tier_id = m.tier_id LEFT JOIN accounts a ON a.member_id = m.member_id
            GROUP BY m.member_id, m.ledger_version, t.code, m.status ORDER BY m.member_id
            """)
        var members: [String] = []
        for try await (id, version, tier, status, pa, pp, ph, ca, cp, ch)
            in rows.decode((Int64, Int64, String, String, Int64, Int64, Int64, Int64, Int64, Int64).self) {
            members.append(text(
                memberID: id, tierCode: tier, status: status, points: MemberBalances(available: pa, pending: pp, held: ph),
                cashback: MemberBalances(available: ca, pending: cp, held: ch), version: version))
        }
        return members
    }

    static func memoryMembers(_ memory: InMemoryCheckoutLedger, _ ids: [Int64]) -> [String] {
        ids.map { id in memory.member(id).map { Self.text($0) } ?? "member \(id) missing" }
    }

    // MARK: The sequences

    @Test("random checkout sequences: the same answer to every call and the same members after every step", arguments: [UInt64(11), 2_026])
    func agreesWithModel(seed: UInt64) async throws {
        try await TestServices.withMigratedDatabase { url, client in
            for tier in Self.tiers where tier.rank > 0 {
                _ = try await client.query(
                    """
                    INSERT INTO tiers (code, name, rank, qualification_spend_minor, qualification_window_days)
                    VALUES (\(tier.code), \(tier.name), \(tier.rank), \(tier.qualificationSpendMinor), \(tier.qualificationWindowDays))
                    """)
            }
            let memory = InMemoryCheckoutLedger(tiers: Self.tiers)
            let store = MemberStore(client: client, logger: TestServices.logger)
            let ledgerStore = LedgerStore(client: client, logger: TestServices.logger)
            let seedExpiry = Date().addingTimeInterval(400 * 86_400)
            var members: [Int64] = []
            for index in 0..<4 {
                let id = try await store.create(NewMember(cardNumber: "ORACLE-\(seed)-\(index)"))
                let versions = try await client.query("SELECT ledger_version FROM members WHERE member_id = \(id)")
                var version: Int64 = -1
                for try await value in versions.decode(Int64.self) { version = value }
                memory.addMember(id: id, ledgerVersion: version)
                if index < 3 {
                    let points: Int64 = [4_000, 1_500, 600][index]
                    _ = try await ledgerStore.adjust(
                        AdjustmentRequest(memberID: id, unit: .points, delta: points, reason: "seed", actor: "oracle", expiresAt: seedExpiry),
                        key: IdempotencyKey(scope: "oracle", key: "seed-\(id)"))
                    try memory.adjust(memberID: id, delta: points, expiresAt: seedExpiry)
                }
                members.append(id)
            }
            let seeded = try await Self.sqlMembers(client)
            try #require(seeded == Self.memoryMembers(memory, members), "seeded members differ: \(seeded) \(Self.memoryMembers(memory, members))")

            let writer = try await CheckoutWriter.connect(url: url, connections: 2, logger: TestServices.logger)
            do {
                try await Self.drive(seed: seed, writer: writer, memory: memory, members: members, client: client)
            } catch {
                await writer.close()
                throw error
            }
            await writer.close()
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)
        }
    }

    /// The steps of one seed; the first difference is recorded with the seed, the step and the call, and ends it.
    static func drive(
        seed: UInt64, writer: CheckoutWriter, memory: InMemoryCheckoutLedger, members: [Int64], client: PostgresClient
    ) async throws {
        let ledgerStore = LedgerStore(client: client, logger: TestServices.logger)
        var random = SeededGenerator(state: seed)
        var generator = SequenceGenerator(members: members, seed: seed)
        var shortHoldsTaken = false
        var compared = 0
        var expiredHolds = 0

        for step in 0..<Self.steps {
            // Now and then, the hold-expiry job over the short holds taken so far, made due without waiting: in SQL
            // their expiry is moved into the past, in memory the job is asked for a minute ahead (short holds last
            // a second, the others five minutes, so both sides expire exactly the short ones).
            if shortHoldsTaken, Int.random(in: 0..<15, using: &random) == 0 {
                try await client.query(
                    "UPDATE holds SET expires_at = now() - interval '1 millisecond' WHERE state = 'active' AND expires_at < now() + interval '60 seconds'",
                    logger: TestServices.logger)
                let expired = try await ledgerStore.runJobBatch(.expireHolds, batchSize: 1_000).holds ?? 0
                let expiredInMemory = memory.expireHolds(now: Date().addingTimeInterval(60))
                #expect(expired == expiredInMemory, "seed \(seed) step \(step): the hold-expiry job expired \(expired) in SQL, \(expiredInMemory) in memory")
                expiredHolds += expired
                shortHoldsTaken = false
            }
            let sent = generator.next(&random)
            let sqlAnswers = await Self.run(sent.sql, on: writer)
            let memoryAnswers = await Self.run(sent.memory, on: memory)
            let context = "seed \(seed) step \(step) \(sent.label)"
            guard sqlAnswers.map(\.text) == memoryAnswers.map(\.text) else {
                Issue.record("\(context): answers differ\n  sql:    \(sqlAnswers.map(\.text))\n  memory: \(memoryAnswers.map(\.text))")
                return
            }
            for (sqlAnswer, memoryAnswer) in zip(sqlAnswers, memoryAnswers) {
                if let sqlMs = sqlAnswer.expiresAtMs, let memoryMs = memoryAnswer.expiresAtMs {
                    #expect(abs(sqlMs - memoryMs) < 2_000, "\(context): hold expiries \(sqlMs) and \(memoryMs)")
                }
            }
            generator.learn(from: sent, sql: sqlAnswers, memory: memoryAnswers)
            if case .hold(let hold) = sent.sql, hold.holdSeconds < 60, sqlAnswers.first?.failed == false {
                shortHoldsTaken = true
            }
            let sqlMembers = try await Self.sqlMembers(client)
            let memoryMembers = Self.memoryMembers(memory, members)
            guard sqlMembers == memoryMembers else {
                Issue.record("\(context): members differ after the call\n  sql:    \(sqlMembers)\n  memory: \(memoryMembers)")
                return
            }
            compared += sqlAnswers.count
        }
        // The sequences reached what they are for (a seed that never refunds or upgrades compares little).
        let seen = generator.outcomes
        for wanted in ["commit", "hold", "cancel", "refund", "error insufficient_balance", "error tier_changed", "error hold_mismatch",
                       "error idempotency_conflict", "replayed=true", "tier=base>silver"] {
            #expect(seen.contains { $0.contains(wanted) }, "seed \(seed): no answer with \(wanted) in \(Self.steps) steps")
        }
        #expect(compared >= Self.steps)
        #expect(expiredHolds > 0, "seed \(seed): the hold-expiry job never expired a hold")
    }

}

/// Draws the calls: new commits (with and without redemption, on holds, in batches), holds, cancels, partial
/// refunds, replays of earlier calls (some changed, which is a conflict), and invalid requests. It learns from
/// the answers which purchases and holds exist and each member's tier, so most calls are plausible.
struct SequenceGenerator {
    typealias Call = CheckoutOracleTests.Call
    typealias Sent = CheckoutOracleTests.Sent

    let members: [Int64]
    let seed: UInt64
    var counter = 0
    var tiers: [Int64: String] = [:]
    var holds: [CheckoutOracleTests.HoldRef] = []
    var purchases: [CheckoutOracleTests.Purchase] = []
    var history: [Sent] = []
    /// Every answer text so far, for the coverage check.
    var outcomes: Set<String> = []

    init(members: [Int64], seed: UInt64) {
        self.members = members
        self.seed = seed
    }

    /// Now, in whole milliseconds as the server resolves a till's `purchased_at_ms` of 0: never after the database's
    /// `now()` of the write, so the purchase counts in its own tier window (a purchase time ahead of the database
    /// clock, which a till's clock skew allows, does not until that time comes, in both ledgers).
    static func purchaseTime() -> Date {
        Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1_000).rounded(.down) / 1_000)
    }

    mutating func id(_ prefix: String) -> String {
        counter += 1
        return "\(prefix)\(seed % 1_000)-\(counter)"
    }

    mutating func next(_ random: inout CheckoutOracleTests.SeededGenerator) -> Sent {
        let sent: Sent
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<22: sent = commit(&random, redeem: false)
        case 22..<36: sent = commit(&random, redeem: true)
        case 36..<46: sent = commitOnHold(&random)
        case 46..<52: sent = batch(&random)
        case 52..<64: sent = hold(&random)
        case 64..<72: sent = cancel(&random)
        case 72..<84: sent = refund(&random)
        case 84..<94: sent = replay(&random)
        case 94..<97: sent = invalidCommit(&random)
        default: sent = heldID(&random)
        }
        history.append(sent)
        return sent
    }

    mutating func learn(from sent: Sent, sql: [CheckoutOracleTests.Answer], memory: [CheckoutOracleTests.Answer]) {
        for answer in sql {
            outcomes.insert(answer.text)
            if let member = answer.member { tiers[member.memberID] = member.tierCode }
        }
        switch (sent.sql, sent.memory) {
        case (.hold(let request), .hold):
            guard let sqlID = sql.first?.holdID, let memoryID = memory.first?.holdID, sql.first?.text.contains("replayed=false") == true
            else { return }
            holds.append(.init(terminalID: request.terminalID, posTransactionID: request.posTransactionID, memberID: request.memberID,
                               points: request.points, sqlID: sqlID, memoryID: memoryID))
        case (.commits(let items), .commits):
            for ((commit, pricing), answer) in zip(items, sql) where answer.text.contains("replayed=false") {
                purchases.append(.init(terminalID: commit.terminalID, posTransactionID: commit.posTransactionID,
                                       memberID: commit.memberID, lines: pricing.lines))
            }
        default:
            return
        }
    }

    // MARK: Commits

    mutating func pricing(
        _ random: inout CheckoutOracleTests.SeededGenerator, member: Int64
    ) -> (Basket, POSCommitPricing) {
        let now = Date()
        let cashback = Int.random(in: 0..<6, using: &random) == 0
        var basketLines: [BasketLine] = []
        var lines: [CheckoutLine] = []
        for index in 0..<Int.random(in: 1...3, using: &random) {
            let quantity = Int64.random(in: 1...3, using: &random)
            let price = Int64.random(in: 1...90, using: &random) * 100
            let excluded = Int.random(in: 0..<8, using: &random) == 0
            let paid = quantity * price
            let award = excluded ? 0 : (cashback ? paid / 50 : paid / 100)
            let lineID = "L\(index)"
            basketLines.append(BasketLine(lineID: lineID, sku: "\(1_000 + index)", category: excluded ? "tobacco" : "grocery",
                                          quantity: quantity, unitPriceMinor: price, discountMinor: 0))
            lines.append(CheckoutLine(lineID: lineID, quantity: quantity, paidMinor: paid, award: award))
        }
        let paidTotal = lines.reduce(0) { $0 + $1.paidMinor }
        let pending = Bool.random(using: &random)
        let availableAt = pending ? now.addingTimeInterval(14 * 86_400) : now.addingTimeInterval(-1)
        let expiresAt: Date? =
            switch Int.random(in: 0..<25, using: &random) {
            case 0: availableAt.addingTimeInterval(-86_400)  // invalid_dates when it earns anything
            case 1..<6: nil
            default: now.addingTimeInterval(700 * 86_400 + Double(Int.random(in: 0..<10_000, using: &random)))
            }
        var tier = tiers[member] ?? "base"
        if Int.random(in: 0..<12, using: &random) == 0 {
            tier = CheckoutOracleTests.tiers.map(\.code).filter { $0 != tier }.randomElement(using: &random)!
        }
        let basket = Basket(currency: "EUR", lines: basketLines)
        return (basket, POSCommitPricing(
            pricedAtTier: tier, unit: cashback ? .cashbackMinor : .points, award: lines.reduce(0) { $0 + $1.award },
            availableAt: availableAt, expiresAt: expiresAt, rulesVersion: "oracle-v1", explanationJSON: "{\"oracle\":true}",
            spendMinor: paidTotal, paidTotalMinor: paidTotal, lines: lines))
    }

    mutating func commit(_ random: inout CheckoutOracleTests.SeededGenerator, redeem: Bool) -> Sent {
        let member = members.randomElement(using: &random)!
        let points: Int64 = redeem ? Int64.random(in: 1...2_000, using: &random) : 0
        let terminal = CheckoutOracleTests.terminals.randomElement(using: &random)!
        let (basket, priced) = pricing(&random, member: member)
        let commit = POSCommit(terminalID: terminal, posTransactionID: id("C"), memberID: member, basket: basket, holdID: nil,
                               redeemPoints: points, purchasedAtMs: 0, purchasedAt: Self.purchaseTime())
        return Sent(label: "commit \(commit.posTransactionID) member \(member) redeem \(points)",
                    sql: .commits([(commit, priced)]), memory: .commits([(commit, priced)]))
    }

    /// A commit naming a hold: mostly its own checkout's, sometimes another transaction's (hold_mismatch), with a
    /// redemption up to a bit more than held (hold_exceeded).
    mutating func commitOnHold(_ random: inout CheckoutOracleTests.SeededGenerator) -> Sent {
        guard let hold = holds.randomElement(using: &random) else { return commit(&random, redeem: true) }
        let foreign = Int.random(in: 0..<6, using: &random) == 0
        let txn = foreign ? id("F") : hold.posTransactionID
        let points = Int64.random(in: 0...(hold.points + 100), using: &random)
        let (basket, priced) = pricing(&random, member: hold.memberID)
        func request(_ holdID: Int64) -> POSCommit {
            POSCommit(terminalID: hold.terminalID, posTransactionID: txn, memberID: hold.memberID, basket: basket, holdID: holdID,
                      redeemPoints: points, purchasedAtMs: 0, purchasedAt: Self.purchaseTime())
        }
        return Sent(label: "commit \(txn) on hold of \(hold.posTransactionID) redeem \(points)",
                    sql: .commits([(request(hold.sqlID), priced)]), memory: .commits([(request(hold.memoryID), priced)]))
    }

    /// Several commits in one call: members may repeat, and an id may be sent twice in the same call.
    mutating func batch(_ random: inout CheckoutOracleTests.SeededGenerator) -> Sent {
        var items: [(POSCommit, POSCommitPricing)] = []
        for _ in 0..<Int.random(in: 2...5, using: &random) {
            if let last = items.last, Int.random(in: 0..<4, using: &random) == 0 {
                items.append(last)
                continue
            }
            let sent = commit(&random, redeem: Bool.random(using: &random))
            guard case .commits(let one) = sent.sql else { continue }
            items += one
        }
        return Sent(label: "batch of \(items.count): \(items.map(\.0.posTransactionID))", sql: .commits(items), memory: .commits(items))
    }

    mutating func invalidCommit(_ random: inout CheckoutOracleTests.SeededGenerator) -> Sent {
        guard case .commits(var items) = commit(&random, redeem: false).sql else { preconditionFailure() }
        switch Int.random(in: 0..<3, using: &random) {
        case 0: items[0].0.memberID = 999_999_999
        case 1: items[0].1.award = -1
        default: items[0].0.posTransactionID = ""
        }
        return Sent(label: "invalid commit \(items[0].0.posTransactionID) member \(items[0].0.memberID)", sql: .commits(items),
                    memory: .commits(items))
    }

    // MARK: Holds, cancels, refunds, replays

    mutating func hold(_ random: inout CheckoutOracleTests.SeededGenerator) -> Sent {
        let member = members.randomElement(using: &random)!
        let points = Int.random(in: 0..<20, using: &random) == 0 ? 0 : Int64.random(in: 1...2_500, using: &random)
        let seconds = Int.random(in: 0..<5, using: &random) == 0 ? 1 : 300
        let request = POSHold(terminalID: CheckoutOracleTests.terminals.randomElement(using: &random)!, posTransactionID: id("H"),
                              memberID: member, points: points, holdSeconds: seconds)
        return Sent(label: "hold \(request.posTransactionID) member \(member) points \(points) for \(seconds) s",
                    sql: .hold(request), memory: .hold(request))
    }

    mutating func cancel(_ random: inout CheckoutOracleTests.SeededGenerator) -> Sent {
        var terminal = CheckoutOracleTests.terminals.randomElement(using: &random)!
        var txn = ""
        switch Int.random(in: 0..<10, using: &random) {
        case 0..<5 where !purchases.isEmpty:
            let purchase = purchases.randomElement(using: &random)!
            terminal = purchase.terminalID
            txn = purchase.posTransactionID
        case 5..<9 where !holds.isEmpty:
            let hold = holds.randomElement(using: &random)!
            terminal = hold.terminalID
            txn = hold.posTransactionID
        default:
            txn = id("U")
        }
        return Sent(label: "cancel \(txn) on \(terminal)", sql: .cancel(terminalID: terminal, posTransactionID: txn),
                    memory: .cancel(terminalID: terminal, posTransactionID: txn))
    }

    /// Some lines of a purchase, mostly within what is left, sometimes more than bought or an unknown line.
    mutating func refund(_ random: inout CheckoutOracleTests.SeededGenerator) -> Sent {
        guard let purchase = purchases.randomElement(using: &random) else { return commit(&random, redeem: true) }
        var returning: [String: Int64] = [:]
        for line in purchase.lines where Bool.random(using: &random) || returning.isEmpty {
            returning[line.lineID] = Int64.random(in: 1...(line.quantity + (Int.random(in: 0..<8, using: &random) == 0 ? 1 : 0)), using: &random)
        }
        if Int.random(in: 0..<15, using: &random) == 0 { returning["ZZ"] = 1 }
        let request = POSRefund(terminalID: CheckoutOracleTests.terminals.randomElement(using: &random)!, refundID: id("R"),
                                originalTerminalID: purchase.terminalID, originalPOSTransactionID: purchase.posTransactionID,
                                returning: returning)
        return Sent(label: "refund \(request.refundID) of \(purchase.posTransactionID) \(returning.sorted { $0.key < $1.key })",
                    sql: .refund(request), memory: .refund(request))
    }

    /// An earlier call again: the same request (a till's retry) or, sometimes, another request under its ids.
    mutating func replay(_ random: inout CheckoutOracleTests.SeededGenerator) -> Sent {
        guard var sent = history.randomElement(using: &random) else { return hold(&random) }
        let change = Int.random(in: 0..<4, using: &random) == 0
        sent.label = (change ? "changed replay of " : "replay of ") + sent.label
        guard change else { return sent }
        func changed(_ call: Call) -> Call {
            switch call {
            case .commits(let items):
                return .commits(items.map { commit, pricing in
                    var commit = commit
                    commit.redeemPoints += 1
                    return (commit, pricing)
                })
            case .hold(var request):
                request.points += 1
                return .hold(request)
            case .refund(var request):
                request.returning["ZY"] = 1
                return .refund(request)
            case .cancel, .heldID:
                return call
            }
        }
        sent.sql = changed(sent.sql)
        sent.memory = changed(sent.memory)
        return sent
    }

    mutating func heldID(_ random: inout CheckoutOracleTests.SeededGenerator) -> Sent {
        let (terminal, txn) = holds.randomElement(using: &random).map { ($0.terminalID, $0.posTransactionID) }
            ?? (CheckoutOracleTests.terminals[0], id("U"))
        return Sent(label: "held id of \(txn)", sql: .heldID(terminalID: terminal, posTransactionID: txn),
                    memory: .heldID(terminalID: terminal, posTransactionID: txn))
    }
}
