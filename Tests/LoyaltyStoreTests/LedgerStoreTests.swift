import Foundation
import LoyaltyCore
@testable import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

/// A migrated database with a ledger and a member store, for one test.
struct LedgerFixture: Sendable {
    let client: PostgresClient
    let ledger: LedgerStore
    let members: MemberStore

    init(client: PostgresClient) {
        self.client = client
        ledger = LedgerStore(client: client, logger: TestServices.logger)
        members = MemberStore(client: client, logger: TestServices.logger)
    }

    func newMember() async throws -> Int64 { try await members.create(NewMember()) }

    func key(_ text: String = UUID().uuidString) -> IdempotencyKey { try! IdempotencyKey(scope: "test", key: text) }

    @discardableResult
    func accrue(_ member: Int64, _ amount: Int64, availableIn: TimeInterval = 0, expiresIn: TimeInterval? = 86_400 * 365,
                key: IdempotencyKey? = nil) async throws -> LedgerReceipt {
        let now = Date()
        return try await ledger.accrue(
            AccrualRequest(
                memberID: member, unit: .points, amount: amount, availableAt: now.addingTimeInterval(availableIn),
                expiresAt: expiresIn.map { now.addingTimeInterval($0) }, occurredAt: now, actor: "test"),
            key: key ?? self.key())
    }

    func redeem(_ member: Int64, _ amount: Int64, hold: Int64? = nil, key: IdempotencyKey? = nil) async throws -> LedgerReceipt {
        try await ledger.redeem(
            RedemptionRequest(memberID: member, unit: .points, amount: amount, holdID: hold, occurredAt: Date(), actor: "test"),
            key: key ?? self.key())
    }

    func count(_ table: String) async throws -> Int {
        let rows = try await client.query(PostgresQuery(unsafeSQL: "SELECT count(*)::int8 FROM \(table)"))
        for try await n in rows.decode(Int.self) { return n }
        return 0
    }

    func ledgerVersion(_ member: Int64) async throws -> Int64 {
        let rows = try await client.query("SELECT ledger_version FROM members WHERE member_id = \(member)")
        for try await version in rows.decode(Int64.self) { return version }
        return -1
    }

    func audit() async throws -> LedgerAudit.Report {
        try await LedgerAudit(client: client, logger: TestServices.logger).run()
    }
}

func withLedger(_ body: @Sendable (LedgerFixture) async throws -> Void) async throws {
    try await TestServices.withMigratedDatabase { _, client in try await body(LedgerFixture(client: client)) }
}

@Suite("Ledger against a real PostgreSQL")
struct LedgerStoreTests {
    @Test("accrual, hold, redemption from the hold, release: balances at each step, audit clean")
    func checkoutFlow() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            let accrued = try await f.accrue(member, 1_000)
            #expect(accrued.balances == MemberBalances(available: 1_000, pending: 0, held: 0))
            #expect(accrued.state == "available")

            let hold = try await f.ledger.hold(
                HoldRequest(memberID: member, unit: .points, amount: 300, expiresAt: Date().addingTimeInterval(300), actor: "test"),
                key: f.key())
            #expect(hold.balances == MemberBalances(available: 700, pending: 0, held: 300))

            let redeemed = try await f.redeem(member, 250, hold: hold.holdId)
            #expect(redeemed.balances == MemberBalances(available: 750, pending: 0, held: 0))
            #expect(redeemed.consumed == [.init(lotId: accrued.lotId!, amount: 250)])

            await #expect(throws: LedgerStoreError.holdNotActive(holdID: hold.holdId!, state: "committed")) {
                try await f.ledger.release(holdID: hold.holdId!, actor: "test", key: f.key())
            }
            #expect(try await f.audit().isClean)
        }
    }

    @Test("an accrual inside the return window is pending, then the job makes it available")
    func pendingThenActivated() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            let receipt = try await f.accrue(member, 40, availableIn: 3_600)
            #expect(receipt.balances == MemberBalances(available: 0, pending: 40, held: 0))
            await #expect(throws: LedgerStoreError.self) { try await f.redeem(member, 1) }
            // The return window ends in SQL rather than by waiting: a loaded machine can outlast any short window.
            try await f.client.query("UPDATE lots SET available_at = now() - interval '1 second' WHERE lot_id = \(receipt.lotId!)")
            let result = try await f.ledger.runJobBatch(.activatePending, batchSize: 100)
            #expect(result.lots == 1)
            #expect(try await f.ledger.balances(memberID: member, unit: .points) == MemberBalances(available: 40, pending: 0, held: 0))
            #expect(try await f.audit().isClean)
        }
    }

    @Test("redemption takes the soonest-expiring lots first; expiry takes what is left of due lots")
    func lotOrderAndExpiry() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            let late = try await f.accrue(member, 100, expiresIn: 86_400 * 30)
            let soon = try await f.accrue(member, 100, expiresIn: 86_400)
            let never = try await f.accrue(member, 100, expiresIn: nil)
            let redeemed = try await f.redeem(member, 150)
            #expect(redeemed.consumed == [.init(lotId: soon.lotId!, amount: 100), .init(lotId: late.lotId!, amount: 50)])
            // Restoring the redemption puts points back into the very lots, last consumed first.
            let restored = try await f.ledger.reverse(
                ReversalRequest(originalEntryID: redeemed.entryId, amount: 120, occurredAt: Date(), actor: "test"), key: f.key())
            #expect(restored.balances.available == 270)
            // The soon lot falls due in SQL rather than by waiting.
            try await f.client.query("""
                UPDATE lots SET available_at = available_at - interval '2 days', expires_at = now() - interval '1 second'
                WHERE lot_id = \(soon.lotId!)
                """)
            let expired = try await f.ledger.runJobBatch(.expireLots, batchSize: 100)
            #expect(expired.amount == 70)  // the soon lot got 70 back (50 to late first), and it is past due
            #expect(try await f.ledger.balances(memberID: member, unit: .points).available == 200)
            _ = never
            #expect(try await f.audit().isClean)
        }
    }

    @Test("50 concurrent redemptions of 1 point on a balance of 10: exactly 10 succeed")
    func concurrentRedemptionsNeverOverdraw() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            try await f.accrue(member, 10)
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        do {
                            _ = try await f.redeem(member, 1)
                            return true
                        } catch LedgerStoreError.insufficientBalance {
                            return false
                        } catch {
                            Issue.record("unexpected error \(error)")
                            return false
                        }
                    }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 10)
            #expect(try await f.ledger.balances(memberID: member, unit: .points).available == 0)
            #expect(try await f.audit().isClean)
        }
    }

    @Test("the same key sent 20 times concurrently makes one entry and 20 identical receipts")
    func concurrentRetriesApplyOnce() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            let key = f.key("pos-txn-42")
            let now = Date()
            // A retry resends the identical request, purchase time included.
            let request = AccrualRequest(
                memberID: member, unit: .points, amount: 77, availableAt: now, expiresAt: nil, occurredAt: now, actor: "till-1")
            let receipts = try await withThrowingTaskGroup(of: LedgerReceipt.self) { group in
                for _ in 0..<20 { group.addTask { try await f.ledger.accrue(request, key: key) } }
                return try await group.reduce(into: [LedgerReceipt]()) { $0.append($1) }
            }
            #expect(Set(receipts.map(\.entryId)).count == 1)
            #expect(receipts.filter { !$0.replayed }.count == 1)
            #expect(try await f.count("journal_entries") == 1)
            #expect(try await f.ledger.balances(memberID: member, unit: .points).available == 77)
        }
    }

    @Test("the same key with a different request is a conflict and writes nothing")
    func keyReuseConflicts() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            let key = f.key("reused")
            try await f.accrue(member, 10, key: key)
            await #expect(throws: LedgerStoreError.idempotencyConflict(scope: "test", key: "reused")) {
                try await f.accrue(member, 11, key: key)
            }
            #expect(try await f.count("journal_entries") == 1)
        }
    }

    @Test("bad requests get typed errors and write nothing")
    func badInputWritesNothing() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            let accrual = try await f.accrue(member, 100)
            let before = try await f.count("journal_entries")

            await #expect(throws: LedgerStoreError.self) { try await f.accrue(member, 0) }
            await #expect(throws: LedgerStoreError.self) { try await f.accrue(member, -5) }
            await #expect(throws: LedgerStoreError.unknownMember(999_999)) { try await f.accrue(999_999, 5) }
            await #expect(throws: LedgerStoreError.insufficientBalance(bucket: "available", requested: 101, available: 100)) {
                try await f.redeem(member, 101)
            }
            await #expect(throws: LedgerStoreError.unknownHold(424_242)) {
                try await f.ledger.release(holdID: 424_242, actor: "test", key: f.key())
            }
            await #expect(throws: LedgerStoreError.reversalExceedsRemaining(entryID: accrual.entryId, requested: 101, remaining: 100)) {
                try await f.ledger.reverse(
                    ReversalRequest(originalEntryID: accrual.entryId, amount: 101, occurredAt: Date(), actor: "test"), key: f.key())
            }
            await #expect(throws: LedgerStoreError.unknownEntry(777_777)) {
                try await f.ledger.reverse(
                    ReversalRequest(originalEntryID: 777_777, amount: 1, occurredAt: Date(), actor: "test"), key: f.key())
            }
            await #expect(throws: LedgerStoreError.self) {
                try await f.ledger.adjust(
                    AdjustmentRequest(memberID: member, unit: .points, delta: 5, reason: "  ", actor: "test"), key: f.key())
            }
            #expect(try await f.count("journal_entries") == before)
            #expect(try await f.count("idempotency_keys") == 1)
            #expect(try await f.ledger.balances(memberID: member, unit: .points).available == 100)
        }
    }

    @Test("ten partial reversals of one accrual add up exactly to the accrual")
    func partialReversalsSumToWhole() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            let accrual = try await f.accrue(member, 997)
            // A line of 7 items earned 997 points; returned one or two at a time, the cumulative floor carries the
            // rounding remainder so the pieces add up to the whole.
            let returnedSteps: [Int64] = [1, 0, 1, 1, 0, 1, 1, 0, 1, 1]
            var returned: Int64 = 0
            var total: Int64 = 0
            for step in returnedSteps {
                let before = 997 * returned / 7
                returned += step
                let piece = 997 * returned / 7 - before
                if piece == 0 { continue }
                let receipt = try await f.ledger.reverse(
                    ReversalRequest(originalEntryID: accrual.entryId, amount: piece, occurredAt: Date(), actor: "test"), key: f.key())
                total += piece
                #expect(receipt.unrecovered == 0)
            }
            #expect(returned == 7)
            #expect(total == 997)
            #expect(try await f.ledger.balances(memberID: member, unit: .points).available == 0)
            await #expect(throws: LedgerStoreError.self) {
                try await f.ledger.reverse(
                    ReversalRequest(originalEntryID: accrual.entryId, amount: 1, occurredAt: Date(), actor: "test"), key: f.key())
            }
            #expect(try await f.audit().isClean)
        }
    }

    @Test("reversing an accrual whose points were spent takes what it can and records the rest as unrecovered")
    func reversalOfSpentPoints() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            let accrual = try await f.accrue(member, 100)
            _ = try await f.redeem(member, 80)
            let receipt = try await f.ledger.reverse(
                ReversalRequest(originalEntryID: accrual.entryId, amount: 100, occurredAt: Date(), actor: "test"), key: f.key())
            #expect(receipt.recovered == 20)
            #expect(receipt.unrecovered == 80)
            #expect(receipt.balances.available == 0)
            #expect(try await f.audit().isClean)
        }
    }

    @Test("balances as of a past instant are rebuilt from postings")
    func balancesAsOf() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            try await f.accrue(member, 50)
            try await Task.sleep(for: .milliseconds(20))
            let between = Date()
            try await Task.sleep(for: .milliseconds(20))
            _ = try await f.redeem(member, 20)
            #expect(try await f.ledger.balances(memberID: member, unit: .points, asOf: between).available == 50)
            #expect(try await f.ledger.balances(memberID: member, unit: .points, asOf: Date()).available == 30)
        }
    }

    @Test("audit is clean after a random mixed workload and fails on a corrupted posting")
    func auditCatchesCorruption() async throws {
        try await withLedger { f in
            var generator = SystemRandomNumberGenerator()
            var memberIDs: [Int64] = []
            for _ in 0..<5 { memberIDs.append(try await f.newMember()) }
            var accruals: [Int64] = []
            var redemptions: [Int64] = []
            for _ in 0..<150 {
                let member = memberIDs.randomElement(using: &generator)!
                do {
                    switch Int.random(in: 0..<6, using: &generator) {
                    case 0, 1: accruals.append(try await f.accrue(member, .random(in: 1...500, using: &generator)).entryId)
                    case 2: redemptions.append(try await f.redeem(member, .random(in: 1...300, using: &generator)).entryId)
                    case 3:
                        if let entry = accruals.randomElement(using: &generator) {
                            _ = try await f.ledger.reverse(
                                ReversalRequest(originalEntryID: entry, amount: .random(in: 1...50, using: &generator), occurredAt: Date(), actor: "t"),
                                key: f.key())
                        }
                    case 4:
                        if let entry = redemptions.randomElement(using: &generator) {
                            _ = try await f.ledger.reverse(
                                ReversalRequest(originalEntryID: entry, amount: .random(in: 1...50, using: &generator), occurredAt: Date(), actor: "t"),
                                key: f.key())
                        }
                    default:
                        let hold = try await f.ledger.hold(
                            HoldRequest(memberID: member, unit: .points, amount: .random(in: 1...100, using: &generator),
                                        expiresAt: Date().addingTimeInterval(60), actor: "t"), key: f.key())
                        if Bool.random(using: &generator) {
                            _ = try await f.redeem(member, .random(in: 1...hold.amount!, using: &generator), hold: hold.holdId)
                        } else {
                            _ = try await f.ledger.release(holdID: hold.holdId!, actor: "t", key: f.key())
                        }
                    }
                } catch is LedgerStoreError {
                    // Insufficient balance and over-reversal are expected in a random workload.
                }
            }
            let clean = try await f.audit()
            #expect(clean.isClean, "\(clean.checks.filter { $0.violations > 0 })")
            #expect(clean.entries > 50)

            // Exactly one posting of one entry doubled: that entry no longer sums to zero.
            try await f.client.query(
                """
                UPDATE postings SET amount = amount * 2
                WHERE (entry_id, account_id) = (SELECT entry_id, account_id FROM postings ORDER BY entry_id, account_id LIMIT 1)
                """)
            let corrupted = try await f.audit()
            #expect(!corrupted.isClean)
            #expect(corrupted.checks.first { $0.name.hasPrefix("every entry") }?.violations == 1)
        }
    }

    @Test("audit finds rows whose references are gone (the hot inserts carry no foreign keys)")
    func auditCatchesDanglingReferences() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            let accrued = try await f.accrue(member, 500)
            #expect(try await f.audit().isClean)
            let missingEntry = accrued.entryId + 1_000_000
            // A posting, a lot and a key pointing at an entry that does not exist; nothing refuses them any more.
            try await f.client.query(
                """
                INSERT INTO postings (entry_id, account_id, amount)
                SELECT \(missingEntry), account_id, 1 FROM accounts WHERE member_id = \(member) AND bucket = 'available' AND unit = 'points'
                """)
            try await f.client.query(
                """
                INSERT INTO lots (member_id, entry_id, unit, original_amount, remaining_amount, state, available_at)
                VALUES (\(member), \(missingEntry), 'points', 1, 1, 'available', now())
                """)
            try await f.client.query(
                "INSERT INTO idempotency_keys (scope, key, request_hash, entry_id, response) VALUES ('test', 'dangling', '\\x00', \(missingEntry), '{}')")
            let report = try await f.audit()
            func violations(_ prefix: String) -> Int? { report.checks.first { $0.name.hasPrefix(prefix) }?.violations }
            #expect(violations("every posting's entry") == 1)
            #expect(violations("every lot's entry") == 1)
            #expect(violations("every idempotency key's entry") == 1)
            #expect(violations("every lot consumption's") == 0)
            #expect(violations("every purchase record's") == 0)
        }
    }
}

@Suite("Ledger history")
struct LedgerHistoryTests {
    @Test("history is paged newest first with movements and explanations")
    func pagedNewestFirst() async throws {
        try await withLedger { f in
            let member = try await f.newMember()
            let now = Date()
            _ = try await f.ledger.accrue(
                AccrualRequest(
                    memberID: member, unit: .points, amount: 10, availableAt: now, expiresAt: nil, occurredAt: now,
                    actor: "till-7", rulesVersion: "abc", explanationJSON: #"{"lines":[{"line":"1","rule":"base","points":10}]}"#),
                key: f.key())
            for amount in [20, 30, 40] as [Int64] { try await f.accrue(member, amount) }
            _ = try await f.redeem(member, 5)

            let first = try await f.ledger.history(memberID: member, limit: 2)
            #expect(first.entries.map(\.kind) == ["redemption", "accrual"])
            #expect(first.entries[0].movements == [.init(bucket: "available", amount: -5)])
            let cursor = try #require(first.nextCursor)
            let second = try await f.ledger.history(memberID: member, before: cursor, limit: 2)
            #expect(second.entries.map(\.amount) == [30, 20])
            let third = try await f.ledger.history(memberID: member, before: second.nextCursor, limit: 2)
            #expect(third.entries.map(\.amount) == [10])
            #expect(third.nextCursor == nil)
            #expect(third.entries[0].rulesVersion == "abc")
            #expect(third.entries[0].actor == "till-7")
            guard case .object(let explanation) = third.entries[0].explanation, case .array(let lines)? = explanation["lines"] else {
                Issue.record("explanation lost: \(third.entries[0].explanation)")
                return
            }
            #expect(lines.count == 1)
        }
    }
}

@Suite("Ledger history: explanations as the API shows them")
struct LedgerHistoryRenderingTests {
    static let compact = #"{"x":1,"u":"points","t":[1000,1000,1000,0,10],"l":[["1","S","grocery",1,1000,10,[["dr","base",100],["rl",1000,"10",10]]]],"b":[["mb",1000,100],["RL"]]}"#

    @Test("a compact explanation is rendered into the full quote, with the tier change inside it")
    func compactRendered() throws {
        let json = LedgerStore.renderedExplanation(Self.compact, compact: true, rulesVersion: "v1",
                                                   tierChange: #"{"to": "silver", "from": "base", "reason": "upgrade"}"#)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["total_award"] as? Int == 10)
        #expect(object["rules_version"] as? String == "v1")
        #expect((object["tier_change"] as? [String: Any])?["to"] as? String == "silver")
        let lines = try #require(object["lines"] as? [[String: Any]])
        let steps = try #require(lines.first?["explanation"] as? [[String: Any]])
        #expect(steps.first?["detail"] as? String == "default rate 100 bp of the paid amount (tier base has no own rate)")
        // The same quote the structured reader gives.
        let quote = try JSONDecoder().decode(Quote.self, from: Data(json.utf8))
        #expect(quote == (try CompactExplanation.decode(Data(Self.compact.utf8), rulesVersion: "v1")))
    }

    @Test("other explanations pass through as stored; an unreadable compact one too; a tier change joins an empty object")
    func passThrough() {
        let adjustment = #"{"reason": "goodwill", "actor": "admin:1"}"#
        #expect(LedgerStore.renderedExplanation(adjustment, compact: false, rulesVersion: nil, tierChange: nil) == adjustment)
        let broken = #"{"x": 99, "u": "points"}"#
        #expect(LedgerStore.renderedExplanation(broken, compact: true, rulesVersion: nil, tierChange: nil) == broken)
        #expect(LedgerStore.renderedExplanation("{}", compact: false, rulesVersion: nil, tierChange: #"{"to": "gold"}"#)
            == #"{"tier_change":{"to": "gold"}}"#)
    }
}
