import Foundation
import LoyaltyCache
import LoyaltyCore
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import POSProtocol
import PostgresNIO
import SwiftProtobuf
import Testing

// The repository's rules (rules/program.yaml): EUR, 100 bp for the base tier, own_brand x2, tobacco excluded and
// not redeemable, at least 500 points and at most 50 % of the redeemable basket paid with points, 14 days pending.

/// What a request answered: the decoded message on OK, else the status and error code.
enum Answer<Message: SwiftProtobuf.Message & Sendable>: Sendable {
    case ok(Message)
    case failed(POSStatus, code: String, message: String)

    var value: Message? {
        if case .ok(let message) = self { return message }
        return nil
    }

    /// "ok", or "status/code" of a failure, e.g. "notFound/unknown_member".
    var outcome: String {
        switch self {
        case .ok: "ok"
        case .failed(let status, let code, _): "\(status)/\(code)"
        }
    }
}

extension POSClient {
    func send<Response: SwiftProtobuf.Message & Sendable>(
        _ method: Loyalty_Pos_V1_Method, _ request: some SwiftProtobuf.Message, as: Response.Type
    ) async throws -> Answer<Response> {
        let response = try await call(method, request)
        guard response.status == .ok else {
            let detail = try? Loyalty_Pos_V1_ErrorDetail(serializedBytes: Array(buffer: response.payload))
            return .failed(response.status, code: detail?.code ?? "", message: detail?.message ?? "")
        }
        return .ok(try Response(serializedBytes: Array(buffer: response.payload)))
    }
}

func basketLine(_ id: String, sku: String, category: String, quantity: Int64, priceMinor: Int64) -> Loyalty_Pos_V1_BasketLine {
    .with {
        $0.lineID = id
        $0.sku = sku
        $0.category = category
        $0.quantity = quantity
        $0.unitPriceMinor = priceMinor
    }
}

/// Paid 60.00: groceries 2 × 10.00 (20 points), own brand 30.00 (x2: 60 points), tobacco 10.00 (nothing).
/// Earns 80; redeemable paid 50.00, so at most 2,500 points.
let sampleBasket = Loyalty_Pos_V1_Basket.with {
    $0.currency = "EUR"
    $0.lines = [
        basketLine("A", sku: "1001", category: "grocery", quantity: 2, priceMinor: 1_000),
        basketLine("B", sku: "1002", category: "own_brand", quantity: 1, priceMinor: 3_000),
        basketLine("C", sku: "1003", category: "tobacco", quantity: 1, priceMinor: 1_000),
    ]
}

struct Points: Equatable, CustomStringConvertible {
    var available: Int64
    var pending: Int64
    var held: Int64
    init(_ available: Int64, _ pending: Int64, _ held: Int64) {
        self.available = available
        self.pending = pending
        self.held = held
    }
    init(_ balances: Loyalty_Pos_V1_Balances) { self.init(balances.available, balances.pending, balances.held) }
    var description: String { "available \(available), pending \(pending), held \(held)" }
}

extension POSHarness {
    func member(card: String, points: Int64 = 0) async throws -> Int64 {
        let id = try await MemberStore(client: client, logger: TestServices.logger).create(NewMember(cardNumber: card))
        if points > 0 {
            _ = try await LedgerStore(client: client, logger: TestServices.logger).adjust(
                AdjustmentRequest(memberID: id, unit: .points, delta: points, reason: "opening balance", actor: "test"),
                key: IdempotencyKey(scope: "test", key: "seed-\(id)"))
        }
        return id
    }

    func entryCount(_ memberID: Int64) async throws -> Int {
        let rows = try await client.query("SELECT count(*)::int8 FROM journal_entries WHERE member_id = \(memberID)")
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    func lookupPoints(_ pos: POSClient, card: String) async throws -> (Points, fromCache: Bool) {
        let summary = try #require(try await pos.send(.lookup, lookup(card: card), as: Loyalty_Pos_V1_MemberSummary.self).value)
        return (Points(summary.points), summary.fromCache)
    }

    func auditIsClean() async throws -> Bool {
        try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean
    }
}

func commitRequest(_ txn: String, member: Int64, holdID: Int64 = 0, redeem: Int64 = 0, basket: Loyalty_Pos_V1_Basket = sampleBasket,
                   purchasedAtMs: Int64 = 0) -> Loyalty_Pos_V1_CommitRequest {
    .with {
        $0.posTransactionID = txn
        $0.memberID = member
        $0.basket = basket
        $0.holdID = holdID
        $0.redeemPoints = redeem
        $0.purchasedAtMs = purchasedAtMs
    }
}

func cancelRequest(_ txn: String) -> Loyalty_Pos_V1_CancelRequest {
    var request = Loyalty_Pos_V1_CancelRequest()
    request.posTransactionID = txn
    return request
}

func refundRequest(_ id: String, of txn: String, _ lines: [(String, Int64)]) -> Loyalty_Pos_V1_RefundRequest {
    .with {
        $0.refundID = id
        $0.originalPosTransactionID = txn
        $0.lines = lines.map { line in .with { $0.lineID = line.0; $0.quantity = line.1 } }
    }
}

@Suite("POS checkout over TCP")
struct POSCheckoutTests {
    @Test("lookup → quote → hold → commit → partial refund, balances checked at every step")
    func wholeCheckout() async throws {
        try await POSHarness.with { harness in
            let memberID = try await harness.member(card: "CARD-CO-1", points: 2_000)
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            #expect(try await harness.lookupPoints(pos, card: "CARD-CO-1").0 == Points(2_000, 0, 0))

            let quote = try #require(try await pos.send(.quote, Loyalty_Pos_V1_QuoteRequest.with {
                $0.memberID = memberID
                $0.basket = sampleBasket
            }, as: Loyalty_Pos_V1_QuoteResponse.self).value)
            #expect(quote.totalAward == 80)
            #expect(quote.lines.map(\.award) == [20, 60, 0])
            #expect(quote.maxRedeemablePoints == 2_000)  // the cap is 2,500; the balance is lower
            #expect(quote.paidTotalMinor == 6_000)
            #expect(quote.rulesVersion == harness.rules.current.version)
            #expect(quote.lines[1].explanationJson.contains("own_brand"))
            #expect(quote.lines[2].explanationJson.contains("excluded"))

            let hold = try #require(try await pos.send(.hold, Loyalty_Pos_V1_HoldRequest.with {
                $0.posTransactionID = "T-1"
                $0.memberID = memberID
                $0.points = 600
            }, as: Loyalty_Pos_V1_HoldResponse.self).value)
            #expect(Points(hold.points) == Points(1_400, 0, 600))
            #expect(hold.expiresAtMs > Int64(Date().timeIntervalSince1970 * 1_000) + 250_000)

            let commit = try #require(try await pos.send(
                .commit, commitRequest("T-1", member: memberID, holdID: hold.holdID, redeem: 600), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(commit.awarded == 80 && commit.redeemed == 600 && !commit.replayed)
            #expect(commit.unit == "points" && commit.tierCode == "base")
            #expect(commit.rulesVersion == harness.rules.current.version)
            #expect(Points(commit.points) == Points(1_400, 80, 0))
            // A retry answers what was booked, field for field: the first answer was read from the commit's columns,
            // the replay from its stored JSON.
            var replay = try #require(try await pos.send(
                .commit, commitRequest("T-1", member: memberID, holdID: hold.holdID, redeem: 600), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(replay.replayed)
            replay.replayed = false
            #expect(replay == commit)
            #expect(try await harness.lookupPoints(pos, card: "CARD-CO-1").0 == Points(1_400, 80, 0))

            // The own-brand line comes back: its 60 points go, and 600 × 3,000 / 6,000 = 300 redeemed points return.
            let refund = try #require(try await pos.send(
                .refund, refundRequest("R-1", of: "T-1", [("B", 1)]), as: Loyalty_Pos_V1_RefundResponse.self).value)
            #expect(refund.awardReversed == 60 && refund.pointsRestored == 300 && refund.refundedMinor == 3_000)
            #expect(refund.awardUnrecovered == 0)
            #expect(Points(refund.points) == Points(1_700, 20, 0))
            // One of the two grocery items, then the other: 10 + 10 points, 100 + 100 redeemed points back.
            let first = try #require(try await pos.send(
                .refund, refundRequest("R-2", of: "T-1", [("A", 1)]), as: Loyalty_Pos_V1_RefundResponse.self).value)
            let second = try #require(try await pos.send(
                .refund, refundRequest("R-3", of: "T-1", [("A", 1)]), as: Loyalty_Pos_V1_RefundResponse.self).value)
            #expect(first.awardReversed + second.awardReversed == 20)
            #expect(first.pointsRestored + second.pointsRestored == 200)
            #expect(Points(second.points) == Points(1_900, 0, 0))
            #expect(try await harness.lookupPoints(pos, card: "CARD-CO-1").0 == Points(1_900, 0, 0))
            #expect(try await harness.auditIsClean())
        }
    }

    @Test("a till whose clock runs ahead (within the allowed skew) still upgrades the member on the qualifying purchase")
    func upgradeFromTillClockAhead() async throws {
        try await POSHarness.with { harness in
            _ = try await TierStore(client: harness.client, logger: TestServices.logger).upsert(
                Tier(code: "silver", name: "Silver", rank: 1, qualificationSpendMinor: 5_000, qualificationWindowDays: 365))
            let memberID = try await harness.member(card: "CARD-UP-AHEAD")
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            let aheadMs = Int64(Date().timeIntervalSince1970 * 1_000) + 120_000
            let request = commitRequest("T-UP-AHEAD", member: memberID, purchasedAtMs: aheadMs)
            let commit = try #require(try await pos.send(.commit, request, as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(commit.tierChangedFrom == "base" && commit.tierCode == "silver")
            // The retry carries the till's time again: the same booking, not a conflict.
            let replay = try #require(try await pos.send(.commit, request, as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(replay.replayed && replay.accrualEntryID == commit.accrualEntryID)
        }
    }

    @Test("the purchase that crosses a tier threshold answers the upgrade; its retry answers the same booking")
    func upgradeAnsweredAndReplayed() async throws {
        try await POSHarness.with { harness in
            _ = try await TierStore(client: harness.client, logger: TestServices.logger).upsert(
                Tier(code: "silver", name: "Silver", rank: 1, qualificationSpendMinor: 5_000, qualificationWindowDays: 365))
            let memberID = try await harness.member(card: "CARD-UP-1")
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            let commit = try #require(try await pos.send(
                .commit, commitRequest("T-UP-1", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(commit.tierChangedFrom == "base" && commit.tierCode == "silver" && !commit.replayed)
            #expect(commit.lines.map(\.lineID) == ["A", "B", "C"] && commit.lines.map(\.award) == [20, 60, 0])
            let replay = try #require(try await pos.send(
                .commit, commitRequest("T-UP-1", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(replay.replayed && replay.tierChangedFrom == "base" && replay.tierCode == "silver")
            #expect(replay.accrualEntryID == commit.accrualEntryID && replay.awarded == commit.awarded)
            #expect(replay.lines.map { [$0.lineID, "\($0.quantity)", "\($0.paidMinor)", "\($0.award)"] }
                    == commit.lines.map { [$0.lineID, "\($0.quantity)", "\($0.paidMinor)", "\($0.award)"] })
        }
    }

    @Test("a purchase stores its explanation compactly; the ledger history shows it in full, as the till saw it")
    func explanationStoredCompactlyReadInFull() async throws {
        try await POSHarness.with { harness in
            let memberID = try await harness.member(card: "CARD-EX-1")
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            let commit = try #require(try await pos.send(
                .commit, commitRequest("T-EX-1", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(commit.awarded == 80)

            let rows = try await harness.client.query(
                "SELECT octet_length(explanation::text)::int8, explanation ? 'x' FROM journal_entries WHERE entry_id = \(commit.accrualEntryID)")
            var stored: (bytes: Int64, compact: Bool)?
            for try await row in rows.decode((Int64, Bool).self) { stored = (row.0, row.1) }
            let (bytes, compact) = try #require(stored)
            #expect(compact)
            #expect(bytes < 700, "a three-line purchase stores \(bytes) bytes of explanation")

            let page = try await LedgerStore(client: harness.client, logger: TestServices.logger).history(memberID: memberID)
            let entry = try #require(page.entries.first { $0.entryId == commit.accrualEntryID })
            let quote = try JSONDecoder().decode(Quote.self, from: try JSONEncoder().encode(entry.explanation))
            #expect(quote.totalAward == 80 && quote.paidTotalMinor == 6_000 && quote.rulesVersion == harness.rules.current.version)
            #expect(quote.lines.map(\.award) == [20, 60, 0])
            for (stored, answered) in zip(quote.lines, commit.lines) {
                let steps = try JSONDecoder().decode([ExplanationStep].self, from: Data(answered.explanationJson.utf8))
                #expect(stored.explanation == steps, "line \(stored.lineID)")
            }
            #expect(quote.lines[1].explanation.contains { $0.rule == .categoryMultiplier && $0.detail == "category own_brand ×2" })
            #expect(quote.explanation.contains { $0.rule == .redemption && $0.detail.contains("checked when the points are redeemed") })
        }
    }

    @Test("a hold is bound to the terminal and transaction that took it; its id cannot be guessed from another")
    func holdBelongsToItsCheckout() async throws {
        try await POSHarness.with { harness in
            let memberID = try await harness.member(card: "CARD-CO-H", points: 2_000)
            let secondSecret = TerminalAuth.randomBytes(32)
            let second = TerminalAuth.credentials(secret: secondSecret)
            try await TerminalStore(client: harness.client, logger: TestServices.logger).save(
                terminalID: "till-2", storeID: "store-9", salt: second.salt, iterations: second.iterations,
                storedKey: second.storedKey, serverKey: second.serverKey)
            let pos = try await harness.authenticated()
            let other = try await harness.connect()
            defer { Task { await pos.close(); await other.close() } }
            try await other.hello(terminalID: "till-2", secret: secondSecret)

            func hold(_ txn: String) async throws -> Loyalty_Pos_V1_HoldResponse {
                try #require(try await pos.send(.hold, Loyalty_Pos_V1_HoldRequest.with {
                    $0.posTransactionID = txn
                    $0.memberID = memberID
                    $0.points = 600
                }, as: Loyalty_Pos_V1_HoldResponse.self).value)
            }
            let taken = try await hold("T-H1")
            let next = try await hold("T-H2")
            // Random ids: two holds in a row are far apart, not neighbours in a sequence.
            #expect(abs(next.holdID - taken.holdID) > 1_000_000)
            #expect(taken.holdID > 0 && next.holdID > 0)

            let entries = try await harness.entryCount(memberID)
            // Another transaction of the same till, and the same transaction id on another till: refused.
            let sameTill = try await pos.send(.commit, commitRequest("T-OTHER", member: memberID, holdID: taken.holdID, redeem: 600),
                                              as: Loyalty_Pos_V1_CommitResponse.self)
            #expect(sameTill.outcome == "invalidArgument/hold_mismatch")
            let otherTill = try await other.send(.commit, commitRequest("T-H1", member: memberID, holdID: taken.holdID, redeem: 600),
                                                 as: Loyalty_Pos_V1_CommitResponse.self)
            #expect(otherTill.outcome == "invalidArgument/hold_mismatch")
            #expect(try await harness.entryCount(memberID) == entries)

            // The till that took it commits with its own transaction id, and the hold is consumed once.
            let commit = try #require(try await pos.send(
                .commit, commitRequest("T-H1", member: memberID, holdID: taken.holdID, redeem: 600),
                as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(commit.redeemed == 600 && !commit.replayed)
            #expect(Points(commit.points) == Points(800, 80, 600))  // the second hold still holds its 600
            #expect(try await harness.auditIsClean())
        }
    }

    @Test("graceful shutdown with 30 commits in flight: every admitted commit is answered, and answered OK exactly when applied")
    func drainAnswersCommitsInFlight() async throws {
        // The server's own drain bound (10 s), not the harness's short one: a loaded machine can take seconds to
        // finish 30 commits that all waited on one lock, and the subject here is that each is answered.
        try await POSHarness.with(drainTimeoutMs: 10_000) { harness in
            var members: [Int64] = []
            for index in 0..<30 { members.append(try await harness.member(card: "CARD-DR-\(index)", points: 1_000)) }
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            let memberIDs = members
            // The members' rows are locked until the drain has begun, so all 30 commits are admitted and waiting in
            // PostgreSQL when the goaway goes out.
            let lock = try await RowLock.hold(harness.client, "SELECT member_id FROM members FOR UPDATE")
            let answers = try await withThrowingTaskGroup(of: (String, POSStatus?).self) { group in
                for (index, member) in memberIDs.enumerated() {
                    group.addTask {
                        let txn = "T-DR-\(index)"
                        do {
                            return (txn, try await pos.call(.commit, commitRequest(txn, member: member, redeem: index.isMultiple(of: 2) ? 500 : 0)).status)
                        } catch {
                            return (txn, nil)  // the connection closed under a request the server had admitted
                        }
                    }
                }
                try await eventually(within: .seconds(10)) { harness.listener.requestsInFlight == memberIDs.count }
                async let drained: Void = harness.listener.drain()
                try await eventually(within: .seconds(10)) { pos.goaway != nil }   // the drain has begun
                try await lock.release()
                await drained
                var answers: [String: POSStatus?] = [:]
                for try await (txn, status) in group { answers[txn] = status }
                return answers
            }
            let unanswered = answers.filter { $0.value == nil }.keys.sorted()
            #expect(unanswered.isEmpty, "requests left without an answer: \(unanswered)")
            let rows = try await harness.client.query("SELECT pos_transaction_id FROM pos_checkouts")
            var applied: Set<String> = []
            for try await txn in rows.decode(String.self) { applied.insert(txn) }
            let answeredOK = Set(answers.filter { $0.value == .ok }.keys)
            #expect(answeredOK == applied, "applied but not answered OK: \(applied.subtracting(answeredOK).sorted())")
            // Whatever was not applied was refused as draining, for the till to retry elsewhere with the same id.
            #expect(answers.values.allSatisfy { $0 == .ok || $0 == .unavailable })
            #expect(try await harness.auditIsClean())
        }
    }

    @Test("after lookups and commits through the cache, no Redis key or value holds a card number, phone or e-mail")
    func redisHoldsNoIdentifiers() async throws {
        try await POSHarness.with(redisURL: try TestServices.redisURL()) { harness in
            let store = MemberStore(client: harness.client, logger: TestServices.logger)
            var identifiers: [(card: String, phone: String, email: String, id: Int64)] = []
            for index in 0..<5 {
                let card = "PII-CARD-\(index)7731"
                let phone = "+49301777\(index)55"
                let email = "pii\(index)@example.org"
                let id = try await store.create(NewMember(cardNumber: card, phone: phone, email: email))
                identifiers.append((card, phone, email, id))
            }
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            for (index, member) in identifiers.enumerated() {
                for _ in 0..<2 {  // a miss that fills, then a hit
                    #expect(try await pos.call(.lookup, lookup(card: member.card)).status == .ok)
                    #expect(try await pos.call(.lookup, Loyalty_Pos_V1_LookupRequest.with { $0.phone = member.phone }).status == .ok)
                }
                #expect(try await pos.call(.commit, commitRequest("T-PII-\(index)", member: member.id)).status == .ok)
            }
            let redis = try TestServices.redisClient()
            defer { Task { await redis.shutdown() } }
            // Every key this server wrote is under its cache namespace (other tests and runs share this Redis).
            let namespace = try #require(harness.cache).namespace
            let keys = (try await redis.send(["KEYS", "\(namespace)*"]).elements ?? []).compactMap(\.bytes)
            #expect(keys.count >= identifiers.count * 3)  // a blob and two index keys per member at least
            let needles = identifiers.flatMap { [$0.card, $0.phone, $0.email] }.map { Array($0.utf8) }
            for key in keys {
                #expect(!needles.contains { key.containsSequence($0) }, "key \(String(decoding: key, as: UTF8.self))")
                let keyText = String(decoding: key, as: UTF8.self)
                var values: [[UInt8]] = []
                switch try await redis.send(["TYPE", keyText]).string {
                case "string": values = [try await redis.send(["GET", keyText]).bytes ?? []]
                case "hash": values = (try await redis.send(["HGETALL", keyText]).elements ?? []).compactMap(\.bytes)
                default: break
                }
                for value in values {
                    #expect(!needles.contains { value.containsSequence($0) }, "value of \(keyText)")
                }
            }
        }
    }

    @Test("a commit still queued when its till disconnects is never sent; past the server-wide in-flight cap, server_busy")
    func disconnectCancelsQueuedCommitAndServerCap() async throws {
        var limits = POSConnectionLimits()
        limits.maximumServerInFlight = 2
        var commitLimits = CommitBatcher.Limits()
        commitLimits.maximumInFlight = 1  // a second commit queues behind the first batch
        try await POSHarness.with(limits: limits, commitLimits: commitLimits) { harness in
            let first = try await harness.member(card: "CARD-Q-1")
            let second = try await harness.member(card: "CARD-Q-2")
            let lock = try await RowLock.hold(harness.client, "SELECT member_id FROM members WHERE member_id = \(first) FOR UPDATE")
            let a = try await harness.authenticated()
            let b = try await harness.authenticated()
            let c = try await harness.authenticated()
            defer { Task { await a.close(); await c.close() } }
            let blocked = Task { try await a.call(.commit, commitRequest("T-Q-1", member: first)) }
            try await eventually(within: .seconds(10)) {   // its batch is in PostgreSQL, waiting for the lock
                (try? await harness.waitingOnLocks()) ?? 0 > 0
            }
            let queued = Task { try? await b.call(.commit, commitRequest("T-Q-2", member: second)) }
            try await eventually(within: .seconds(10)) { harness.listener.requestsInFlight == 2 }   // queued behind it
            // Two requests in flight on the server: a third is refused at once.
            let busy = try await c.send(.lookup, lookup(card: "CARD-Q-1"), as: Loyalty_Pos_V1_MemberSummary.self)
            #expect(busy.outcome == "resourceExhausted/server_busy")
            await b.close()
            _ = await queued.value
            // The server notices the close and cancels the queued request, which gives its slot back.
            try await eventually(within: .seconds(10)) { harness.listener.requestsInFlight == 1 }
            try await lock.release()
            #expect(try await blocked.value.status == .ok)
            let rows = try await harness.client.query("SELECT pos_transaction_id FROM pos_checkouts ORDER BY 1")
            var applied: [String] = []
            for try await txn in rows.decode(String.self) { applied.append(txn) }
            #expect(applied == ["T-Q-1"], "a commit of a closed connection was sent: \(applied)")
            // The slots are given back: the server answers again.
            #expect(try await c.call(.lookup, lookup(card: "CARD-Q-2")).status == .ok)
        }
    }

    @Test("pricing from the cached snapshot follows a tier's new earn rate once the campaigns version moved")
    func cachedPricingFollowsTierChange() async throws {
        try await POSHarness.with(redisURL: try TestServices.redisURL()) { harness in
            let memberID = try await harness.member(card: "CARD-PR-1")
            await harness.campaigns.refresh()
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            _ = try await pos.call(.lookup, lookup(card: "CARD-PR-1"))   // caches the snapshot with its pricing facts
            let first = try #require(try await pos.send(.commit, commitRequest("T-PR-1", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(first.awarded == 80)
            // The tier's rate doubles: a cached snapshot priced under the old ladder must not be used any more.
            try await harness.client.query("UPDATE tiers SET earn_rate_override_bp = 200 WHERE code = 'base'")
            await harness.campaigns.refresh()
            let second = try #require(try await pos.send(.commit, commitRequest("T-PR-2", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(second.awarded == 160)
            #expect(try await harness.auditIsClean())
        }
    }

    @Test("a commit sent 10 times in a row and 10 times at once on separate connections is applied once")
    func commitIsIdempotent() async throws {
        try await POSHarness.with { harness in
            let memberID = try await harness.member(card: "CARD-CO-2", points: 1_000)
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            let request = commitRequest("T-2", member: memberID, redeem: 500)
            var responses: [Loyalty_Pos_V1_CommitResponse] = []
            for _ in 0..<10 {
                let answer = try await pos.send(.commit, request, as: Loyalty_Pos_V1_CommitResponse.self)
                if case .failed(let status, let code, let message) = answer { Issue.record("commit failed: \(status) \(code) \(message)") }
                responses.append(try #require(answer.value))
            }
            let concurrent = try await withThrowingTaskGroup(of: Loyalty_Pos_V1_CommitResponse?.self) { group in
                for _ in 0..<10 {
                    group.addTask {
                        let other = try await harness.authenticated()
                        defer { Task { await other.close() } }
                        return try await other.send(.commit, commitRequest("T-3", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value
                    }
                }
                return try await group.reduce(into: [Loyalty_Pos_V1_CommitResponse?]()) { $0.append($1) }
            }
            #expect(responses.filter { !$0.replayed }.count == 1)
            #expect(Set(responses.map(\.accrualEntryID)).count == 1)
            #expect(responses.allSatisfy { $0.awarded == 80 && $0.redeemed == 500 && $0.lines.map(\.award) == [20, 60, 0] })
            #expect(responses.allSatisfy { $0.lines[1].explanationJson.contains("own_brand") })
            #expect(concurrent.count == 10 && concurrent.allSatisfy { $0 != nil })
            #expect(concurrent.compactMap { $0 }.filter { !$0.replayed }.count == 1)
            #expect(Set(concurrent.compactMap { $0?.accrualEntryID }).count == 1)
            // Seed adjustment + T-2 (redemption, accrual) + T-3 (accrual).
            #expect(try await harness.entryCount(memberID) == 4)
            #expect(try await harness.lookupPoints(pos, card: "CARD-CO-2").0 == Points(500, 160, 0))

            // The same id with another basket is another request: refused, nothing written.
            var other = sampleBasket
            other.lines.removeLast()
            let conflict = try await pos.send(.commit, commitRequest("T-2", member: memberID, redeem: 500, basket: other), as: Loyalty_Pos_V1_CommitResponse.self)
            #expect(conflict.outcome == "alreadyExists/idempotency_conflict")
            #expect(try await harness.entryCount(memberID) == 4)
            #expect(try await harness.auditIsClean())
        }
    }

    @Test("bad checkout requests get their status and code and leave the ledger untouched")
    func badRequests() async throws {
        try await POSHarness.with { harness in
            let memberID = try await harness.member(card: "CARD-CO-3", points: 700)
            let poor = try await harness.member(card: "CARD-CO-4")
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            _ = try #require(try await pos.send(.commit, commitRequest("T-4", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            let entries = try await harness.entryCount(memberID)

            func commitFails(_ request: Loyalty_Pos_V1_CommitRequest) async throws -> String {
                try await pos.send(.commit, request, as: Loyalty_Pos_V1_CommitResponse.self).outcome
            }
            func refundFails(_ request: Loyalty_Pos_V1_RefundRequest) async throws -> String {
                try await pos.send(.refund, request, as: Loyalty_Pos_V1_RefundResponse.self).outcome
            }
            #expect(try await refundFails(refundRequest("R-9", of: "T-4", [("A", 3)])) == "invalidArgument/refund_exceeds_purchase")
            #expect(try await refundFails(refundRequest("R-9", of: "T-4", [("Z", 1)])) == "invalidArgument/unknown_line")
            #expect(try await refundFails(refundRequest("R-9", of: "T-4", [("A", 0)])) == "invalidArgument/invalid_refund")
            #expect(try await refundFails(refundRequest("R-9", of: "NOPE", [("A", 1)])) == "notFound/unknown_transaction")
            #expect(try await commitFails(commitRequest("T-5", member: memberID, holdID: 999_999, redeem: 500)) == "notFound/unknown_hold")
            var dollars = sampleBasket
            dollars.currency = "USD"
            #expect(try await commitFails(commitRequest("T-5", member: memberID, basket: dollars)) == "invalidArgument/invalid_basket")
            var negative = sampleBasket
            negative.lines[0].unitPriceMinor = -5
            #expect(try await commitFails(commitRequest("T-5", member: memberID, basket: negative)) == "invalidArgument/invalid_basket")
            #expect(try await commitFails(commitRequest("T-5", member: memberID, redeem: 100)) == "failedPrecondition/redemption_not_allowed")
            #expect(try await commitFails(commitRequest("T-5", member: memberID, redeem: 2_600)) == "failedPrecondition/redemption_not_allowed")
            #expect(try await commitFails(commitRequest("T-5", member: memberID, redeem: -1)) == "invalidArgument/invalid_amount")
            #expect(try await commitFails(commitRequest("T-5", member: poor, redeem: 500)) == "failedPrecondition/insufficient_balance")
            // Precedence (docs/pos-protocol.md §4): the basket's redemption bounds before the balance, the hold before
            // the balance.
            #expect(try await commitFails(commitRequest("T-5", member: poor, redeem: 100)) == "failedPrecondition/redemption_not_allowed")
            #expect(try await commitFails(commitRequest("T-5", member: poor, holdID: 999_999, redeem: 500)) == "notFound/unknown_hold")
            #expect(try await commitFails(commitRequest("T-5", member: 987_654)) == "notFound/unknown_member")
            #expect(try await commitFails(commitRequest("", member: memberID)) == "invalidArgument/bad_pos_transaction_id")
            #expect(try await commitFails(commitRequest(String(repeating: "x", count: 65), member: memberID)) == "invalidArgument/bad_pos_transaction_id")
            let future = Int64(Date().timeIntervalSince1970 * 1_000) + 3_600_000
            #expect(try await commitFails(commitRequest("T-5", member: memberID, purchasedAtMs: future)) == "invalidArgument/purchase_in_future")
            let ancient = Int64(Date().timeIntervalSince1970 * 1_000) - 40 * 86_400_000
            #expect(try await commitFails(commitRequest("T-5", member: memberID, purchasedAtMs: ancient)) == "failedPrecondition/purchase_too_old")
            let overHold = try await pos.send(.hold, Loyalty_Pos_V1_HoldRequest.with {
                $0.posTransactionID = "T-6"
                $0.memberID = memberID
                $0.points = 5_000
            }, as: Loyalty_Pos_V1_HoldResponse.self)
            #expect(overHold.outcome == "failedPrecondition/insufficient_balance")
            func holdFails(points: Int64, seconds: UInt32 = 0) async throws -> String {
                try await pos.send(.hold, Loyalty_Pos_V1_HoldRequest.with {
                    $0.posTransactionID = "T-7"
                    $0.memberID = memberID
                    $0.points = points
                    $0.holdSeconds = seconds
                }, as: Loyalty_Pos_V1_HoldResponse.self).outcome
            }
            // Below the 500-point minimum redemption such a hold could never be used; too short a hold is a mistake.
            #expect(try await holdFails(points: 499) == "invalidArgument/invalid_amount")
            #expect(try await holdFails(points: 600, seconds: 29) == "invalidArgument/invalid_hold_seconds")
            #expect(try await holdFails(points: 600, seconds: 3_601) == "invalidArgument/invalid_hold_seconds")
            let garbage = try await pos.call(method: UInt16(Loyalty_Pos_V1_Method.commit.rawValue), payload: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF]))
            #expect(garbage.status == .invalidArgument)

            #expect(try await harness.entryCount(memberID) == entries)
            #expect(try await harness.entryCount(poor) == 0)
            // The failed T-5 attempts claimed nothing: the id is still free for a good request.
            #expect(try await pos.send(.commit, commitRequest("T-5", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value?.replayed == false)
            #expect(try await harness.auditIsClean())
        }
    }

    @Test("cancel releases a hold or voids a commit, once; a voided purchase cannot be refunded")
    func cancel() async throws {
        try await POSHarness.with { harness in
            let memberID = try await harness.member(card: "CARD-CO-5", points: 1_000)
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            let hold = try #require(try await pos.send(.hold, Loyalty_Pos_V1_HoldRequest.with {
                $0.posTransactionID = "T-7"
                $0.memberID = memberID
                $0.points = 800
            }, as: Loyalty_Pos_V1_HoldResponse.self).value)
            // A hold id, when sent, must be the one taken under the transaction id; a wrong one changes nothing.
            var wrongHold = cancelRequest("T-7")
            wrongHold.holdID = hold.holdID + 1
            #expect(try await pos.send(.cancel, wrongHold, as: Loyalty_Pos_V1_CancelResponse.self).outcome == "invalidArgument/hold_mismatch")
            var noHold = cancelRequest("T-NOHOLD")
            noHold.holdID = hold.holdID
            #expect(try await pos.send(.cancel, noHold, as: Loyalty_Pos_V1_CancelResponse.self).outcome == "notFound/unknown_hold")
            #expect(try await harness.lookupPoints(pos, card: "CARD-CO-5").0 == Points(200, 0, 800))
            var rightHold = cancelRequest("T-7")
            rightHold.holdID = hold.holdID
            let released = try #require(try await pos.send(.cancel, rightHold, as: Loyalty_Pos_V1_CancelResponse.self).value)
            #expect(released.cancelled == "hold" && Points(released.points) == Points(1_000, 0, 0))

            _ = try #require(try await pos.send(.commit, commitRequest("T-8", member: memberID, redeem: 500), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(try await harness.lookupPoints(pos, card: "CARD-CO-5").0 == Points(500, 80, 0))
            let voided = try #require(try await pos.send(.cancel, cancelRequest("T-8"),
                                                         as: Loyalty_Pos_V1_CancelResponse.self).value)
            #expect(voided.cancelled == "commit" && voided.awardReversed == 80 && voided.pointsRestored == 500 && !voided.replayed)
            #expect(Points(voided.points) == Points(1_000, 0, 0))
            let again = try #require(try await pos.send(.cancel, cancelRequest("T-8"),
                                                        as: Loyalty_Pos_V1_CancelResponse.self).value)
            #expect(again.replayed && again.awardReversed == 80)
            let refund = try await pos.send(.refund, refundRequest("R-8", of: "T-8", [("A", 1)]), as: Loyalty_Pos_V1_RefundResponse.self)
            #expect(refund.outcome == "failedPrecondition/transaction_voided")
            let unknown = try await pos.send(.cancel, cancelRequest("T-404"), as: Loyalty_Pos_V1_CancelResponse.self)
            #expect(unknown.outcome == "notFound/unknown_transaction")
            #expect(try await harness.lookupPoints(pos, card: "CARD-CO-5").0 == Points(1_000, 0, 0))
            #expect(try await harness.auditIsClean())
        }
    }

    @Test("lookups come from Redis after the first, see every ledger change, and are answered from PostgreSQL while Redis is down")
    func cachedLookups() async throws {
        let scratch = try await ScratchRedis.start()
        defer { scratch.stop() }
        try await POSHarness.with(redisURL: scratch.url) { harness in
            let memberID = try await harness.member(card: "CARD-CO-6", points: 1_000)
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            // The first write to a fresh scratch server can meet a connection still coming up: warm it.
            for _ in 0..<50 where try await harness.lookupPoints(pos, card: "CARD-CO-6").fromCache == false {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await harness.lookupPoints(pos, card: "CARD-CO-6") == (Points(1_000, 0, 0), true))
            _ = try #require(try await pos.send(.commit, commitRequest("T-9", member: memberID, redeem: 500), as: Loyalty_Pos_V1_CommitResponse.self).value)
            // The commit wrote the new snapshot: the cached answer already has it.
            #expect(try await harness.lookupPoints(pos, card: "CARD-CO-6") == (Points(500, 80, 0), true))

            scratch.stop()
            for _ in 0..<5 {
                #expect(try await harness.lookupPoints(pos, card: "CARD-CO-6") == (Points(500, 80, 0), false))
            }
            // Writes go on while Redis is down; the cache cannot hear of them.
            _ = try #require(try await pos.send(.commit, commitRequest("T-10", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(try await harness.lookupPoints(pos, card: "CARD-CO-6") == (Points(500, 160, 0), false))

            // Back (empty here, but a failover could bring old values): the new epoch means nothing from before is
            // served; the first lookup fills from PostgreSQL.
            let restarted = try await RedisProcess.start(port: scratch.port)
            defer { restarted.stop() }
            var answer = try await harness.lookupPoints(pos, card: "CARD-CO-6")
            for _ in 0..<100 where !answer.fromCache {
                try await Task.sleep(for: .milliseconds(50))
                answer = try await harness.lookupPoints(pos, card: "CARD-CO-6")
            }
            #expect(answer == (Points(500, 160, 0), true))
            #expect(try #require(harness.cache).statistics.unavailable >= 5)
        }
    }

    @Test("a weekend double-points campaign doubles a purchase made in its window, and the explanation names it")
    func weekendMultiplier() async throws {
        try await POSHarness.with { harness in
            let memberID = try await harness.member(card: "CARD-CO-8")
            // The latest Saturday 00:00 UTC at least a day ago, so both test purchases lie inside the return window.
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            var saturday = calendar.startOfDay(for: Date().addingTimeInterval(-86_400))
            while calendar.component(.weekday, from: saturday) != 7 { saturday = saturday.addingTimeInterval(-86_400) }
            let campaign = try CampaignMultiplier(
                campaignID: 0, name: "Weekend double points", startsAt: saturday, endsAt: saturday.addingTimeInterval(2 * 86_400),
                effect: .multiplier(bp: 20_000))
            let campaignID = try await CampaignStore(client: harness.client, logger: TestServices.logger)
                .createMultiplier(campaign, state: "running", createdBy: "test")
            // Scheduled well ahead of the weekend (a campaign scheduled after a sale does not apply to it).
            try await harness.client.query(
                "UPDATE campaigns SET scheduled_at = starts_at - interval '7 days' WHERE campaign_id = \(campaignID)")
            await harness.campaigns.refresh()
            #expect(harness.campaigns.current.map(\.campaignID) == [campaignID])

            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            let saturdayNoonMs = Int64(saturday.addingTimeInterval(12 * 3_600).timeIntervalSince1970 * 1_000)
            let fridayNoonMs = saturdayNoonMs - 86_400_000
            let weekend = try #require(try await pos.send(
                .commit, commitRequest("W-1", member: memberID, purchasedAtMs: saturdayNoonMs), as: Loyalty_Pos_V1_CommitResponse.self).value)
            let weekday = try #require(try await pos.send(
                .commit, commitRequest("W-2", member: memberID, purchasedAtMs: fridayNoonMs), as: Loyalty_Pos_V1_CommitResponse.self).value)
            // Groceries 20 × 2 = 40; own brand 30 × 2 (own brand) × 2 (campaign) = 120; tobacco nothing.
            #expect(weekend.awarded == 160)
            #expect(weekday.awarded == 80)
            #expect(weekend.lines[1].explanationJson.contains("Weekend double points"))
            #expect(!weekday.lines[1].explanationJson.contains("Weekend double points"))
            // A quote for the Friday: the campaign was not in force then, so the explanation does not list it (a
            // program's past and future campaigns would otherwise fill every explanation).
            let quote = try #require(try await pos.send(.quote, Loyalty_Pos_V1_QuoteRequest.with {
                $0.memberID = memberID
                $0.basket = sampleBasket
                $0.purchasedAtMs = fridayNoonMs
            }, as: Loyalty_Pos_V1_QuoteResponse.self).value)
            #expect(!quote.explanationJson.contains("Weekend double points"))
            #expect(quote.totalAward == 80)
        }
    }

    @Test("an offline till's purchase is priced by the rules in force at its purchase time, not at the replay")
    func offlineReplayUsesRulesOfPurchaseTime() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = try String(contentsOf: TestServices.packageRoot.appendingPathComponent("rules/program.yaml"), encoding: .utf8)
        try original.write(to: directory.appendingPathComponent("program.yaml"), atomically: true, encoding: .utf8)
        try await POSHarness.with(rulesDirectory: directory) { harness in
            let memberID = try await harness.member(card: "CARD-CO-7")
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            let oldVersion = harness.rules.current.version
            try await Task.sleep(for: .milliseconds(100))
            let offlineSaleMs = Int64(Date().timeIntervalSince1970 * 1_000)
            try await Task.sleep(for: .milliseconds(100))

            // Double the base rate, as a rules change would while the till is offline.
            let doubled = original.replacingOccurrences(of: "    base: 100 ", with: "    base: 200 ")
            #expect(doubled != original)
            try doubled.write(to: directory.appendingPathComponent("program.yaml"), atomically: true, encoding: .utf8)
            let outcome = await harness.rules.reload(recordingIn: RulesHistoryStore(client: harness.client, logger: TestServices.logger))
            guard case .reloaded(_, let newVersion) = outcome else {
                Issue.record("reload did not happen: \(outcome)")
                return
            }

            let replayed = try #require(try await pos.send(
                .commit, commitRequest("OFF-1", member: memberID, purchasedAtMs: offlineSaleMs), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(replayed.rulesVersion == oldVersion)
            #expect(replayed.awarded == 80)
            let live = try #require(try await pos.send(.commit, commitRequest("LIVE-1", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(live.rulesVersion == newVersion)
            #expect(live.awarded == 160)  // groceries 20.00 × 200 bp = 40, own brand 30.00 × 200 bp × 2 = 120
        }
    }

    @Test("an offline replay is priced with the campaigns in force at its purchase time: not one scheduled later with a backdated start, still one cancelled later")
    func offlineReplayUsesCampaignsInForceThen() async throws {
        try await POSHarness.with { harness in
            let memberID = try await harness.member(card: "CARD-CO-9")
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            let now = Date()
            let offlineSaleMs = Int64(now.timeIntervalSince1970 * 1_000) - 60_000
            let store = CampaignStore(client: harness.client, logger: TestServices.logger)
            // Live at the sale (scheduled two hours before it), cancelled after it.
            let cancelledLater = try await store.createMultiplier(try CampaignMultiplier(
                campaignID: 0, name: "Cancelled after the sale", startsAt: now.addingTimeInterval(-3_600),
                endsAt: now.addingTimeInterval(3_600), effect: .multiplier(bp: 20_000)), state: "running", createdBy: "test")
            try await harness.client.query(
                "UPDATE campaigns SET scheduled_at = now() - interval '2 hours' WHERE campaign_id = \(cancelledLater)")
            try await harness.client.query("UPDATE campaigns SET state = 'cancelled' WHERE campaign_id = \(cancelledLater)")
            // Scheduled now, after the sale, with a start an hour back.
            let backdated = try await store.createMultiplier(try CampaignMultiplier(
                campaignID: 0, name: "Backdated", startsAt: now.addingTimeInterval(-3_600),
                endsAt: now.addingTimeInterval(3_600), effect: .multiplier(bp: 15_000)), state: "running", createdBy: "test")
            await harness.campaigns.refresh()
            #expect(Set(harness.campaigns.current.map(\.campaignID)) == [cancelledLater, backdated])

            // ×2 only: groceries 20 → 40, own brand 60 → 120. With both it would be ×2.5 (200).
            let replayed = try #require(try await pos.send(
                .commit, commitRequest("OFF-C1", member: memberID, purchasedAtMs: offlineSaleMs), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(replayed.awarded == 160)
            #expect(replayed.lines[1].explanationJson.contains("Cancelled after the sale"))
            #expect(!replayed.lines[1].explanationJson.contains("Backdated"))
            // Now: ×1.5 only: 30 + 90.
            let live = try #require(try await pos.send(.commit, commitRequest("LIVE-C1", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(live.awarded == 120)
        }
    }

    @Test("a campaign scheduled after this server loaded its campaigns applies to the next commit: the ledger refuses the old pricing and the server prices again")
    func commitSeesCampaignScheduledJustBefore() async throws {
        try await POSHarness.with { harness in
            let memberID = try await harness.member(card: "CARD-CO-10")
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            await harness.campaigns.refresh()
            let loadedVersion = harness.campaigns.version
            // Scheduled now, without telling this server (no refresh, no listener in this harness).
            let now = Date()
            _ = try await CampaignStore(client: harness.client, logger: TestServices.logger).createMultiplier(try CampaignMultiplier(
                campaignID: 0, name: "Flash double", startsAt: now.addingTimeInterval(-60), endsAt: now.addingTimeInterval(3_600),
                effect: .multiplier(bp: 20_000)), state: "running", createdBy: "test")
            #expect(harness.campaigns.version == loadedVersion)

            let commit = try #require(try await pos.send(.commit, commitRequest("FLASH-1", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(commit.awarded == 160)  // ×2: groceries 40, own brand 120
            #expect(commit.lines[1].explanationJson.contains("Flash double"))
            #expect(harness.campaigns.version > loadedVersion)
        }
    }

    @Test("a server hears of a campaign change by notification, long before its next poll")
    func campaignChangeNotified() async throws {
        try await POSHarness.with { harness in
            let refresher = ActiveCampaignsRefresher(campaigns: harness.campaigns, pollInterval: .seconds(600), listenClient: harness.client)
            let running = Task { try await refresher.run() }
            defer { running.cancel() }
            // The first poll and the listener's first refresh load what is there; then nothing polls for 10 minutes.
            try await eventually(within: .seconds(5)) { harness.campaigns.version >= 0 }
            try await Task.sleep(for: .milliseconds(300))  // let the listener's LISTEN reach the server first
            let now = Date()
            let id = try await CampaignStore(client: harness.client, logger: TestServices.logger).createMultiplier(try CampaignMultiplier(
                campaignID: 0, name: "Notified", startsAt: now, endsAt: now.addingTimeInterval(3_600),
                effect: .multiplier(bp: 20_000)), state: "running", createdBy: "test")
            try await eventually(within: .seconds(5)) { harness.campaigns.current.contains { $0.campaignID == id } }
        }
    }

    @Test("a purchase that moved the member up a tier says so in its ledger entry's explanation")
    func upgradeInExplanation() async throws {
        try await POSHarness.with { harness in
            _ = try await TierStore(client: harness.client, logger: TestServices.logger)
                .upsert(Tier(code: "silver", name: "Silver", rank: 1, qualificationSpendMinor: 5_000, qualificationWindowDays: 365))
            let memberID = try await harness.member(card: "CARD-CO-11")
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }
            let commit = try #require(try await pos.send(.commit, commitRequest("UP-1", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(commit.tierChangedFrom == "base" && commit.tierCode == "silver")
            let second = try #require(try await pos.send(.commit, commitRequest("UP-2", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(second.tierChangedFrom == "")

            let page = try await LedgerStore(client: harness.client, logger: TestServices.logger).history(memberID: memberID)
            func tierChange(_ entryID: Int64) throws -> JSONValue? {
                let entry = try #require(page.entries.first { $0.entryId == entryID })
                guard case .object(let explanation) = entry.explanation else { return nil }
                return explanation["tier_change"]
            }
            guard case .object(let change)? = try tierChange(commit.accrualEntryID) else {
                Issue.record("the upgrading purchase's explanation has no tier_change")
                return
            }
            #expect(change["from"] == .string("base") && change["to"] == .string("silver"))
            #expect(try tierChange(second.accrualEntryID) == nil)
        }
    }
}
