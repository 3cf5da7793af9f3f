import Foundation
import Logging
import LoyaltyCore
import NIOCore
import PostgresNIO

/// The till's writes (hold, commit, cancel, refund) and reads (pricing, member snapshots) in PostgreSQL. Each
/// write is one call to a `pos_*` function of migration 0006: one round trip, one transaction, idempotent on the
/// terminal's own id. Every write answers with the member's new snapshot (the cache's JSON form) so the caller can
/// refresh the cache with the new ledger version.
public struct CheckoutStore: Sendable {
    /// Longest POS transaction or refund id; keeps idempotency keys short and index-friendly.
    public static let maximumTransactionIDBytes = 64
    /// How often a refund is recomputed when other refunds of the same purchase land first.
    static let refundAttempts = 5

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    // MARK: Reads

    /// What pricing a basket needs. Nil: no such member.
    public func pricing(memberID: Int64) async throws(LedgerStoreError) -> MemberPricing? {
        let text = try await optionalText("SELECT pos_member_pricing(\(memberID))::text")
        return try text.map { text throws(LedgerStoreError) in try decode(MemberPricing.self, text) }
    }

    /// The member's snapshot in the cache's JSON form, looked up by one identifier. Nil: no such member.
    public func snapshot(_ identifier: MemberIdentifier) async throws(LedgerStoreError) -> Data? {
        let query: PostgresQuery =
            switch identifier {
            case .memberID(let id): "SELECT pos_member_snapshot(member_id)::text FROM members WHERE member_id = \(id)"
            case .card(let card): "SELECT pos_member_snapshot(member_id)::text FROM members WHERE card_number = \(card)"
            case .phone(let phone): "SELECT pos_member_snapshot(member_id)::text FROM members WHERE phone = \(phone)"
            }
        return try await optionalText(query).map { Data($0.utf8) }
    }

    public func checkout(terminalID: String, posTransactionID: String) async throws(LedgerStoreError) -> CheckoutRecord? {
        let text = try await optionalText(
            """
            SELECT jsonb_build_object('member_id', member_id, 'unit', unit, 'awarded', awarded, 'redeemed', redeemed,
                'paid_total_minor', paid_total_minor, 'lines', lines, 'returned', returned,
                'refunded_minor', refunded_minor, 'refund_version', refund_version, 'voided', voided,
                'rules_version', rules_version)::text
            FROM pos_checkouts WHERE terminal_id = \(terminalID) AND pos_transaction_id = \(posTransactionID)
            """)
        // A plain decoder: snake_case conversion would also rewrite the line ids used as keys of `returned`.
        return try text.map { text throws(LedgerStoreError) in try decode(CheckoutRecord.self, text, decoder: JSONDecoder()) }
    }

    // MARK: Writes

    public func hold(_ request: POSHold) async throws(LedgerStoreError) -> (result: HoldResult, member: Data) {
        let key = try Self.key(terminalID: request.terminalID, "hold", request.posTransactionID)
        let hash = ByteBuffer(bytes: requestHash("pos-hold", request))
        let expiresAt = Date().addingTimeInterval(TimeInterval(request.holdSeconds))
        return try await write(
            """
            SELECT r - 'member', r -> 'member' FROM pos_hold(\(key.scope), \(key.key), \(hash), \(request.terminalID),
                \(request.posTransactionID), \(request.memberID), \(request.points), \(expiresAt)) AS r
            """)
    }

    /// - Parameter pricedAtTier: the tier the basket was priced at; if the member's tier changed since, throws
    ///   `tierChanged` and nothing is written.
    public func commit(_ commit: POSCommit, pricing: POSCommitPricing) async throws(LedgerStoreError) -> (result: CommitResult, member: Data) {
        let key = try Self.key(terminalID: commit.terminalID, "commit", commit.posTransactionID)
        let hash = ByteBuffer(bytes: requestHash("pos-commit", commit))
        let lines: String
        do {
            lines = String(decoding: try JSONEncoder().encode(pricing.lines), as: UTF8.self)
        } catch {
            throw .invalidAmount("lines could not be encoded: \(error)")
        }
        return try await write(decoder: JSONDecoder(),
            """
            SELECT r - 'member', r -> 'member' FROM pos_commit(\(key.scope), \(key.key), \(hash), \(commit.terminalID),
                \(commit.posTransactionID), \(commit.memberID), \(pricing.pricedAtTier)::text, \(pricing.unit.rawValue),
                \(pricing.award), \(pricing.availableAt), \(pricing.expiresAt)::timestamptz, \(commit.purchasedAt),
                \(pricing.rulesVersion)::text, \(pricing.explanationJSON)::jsonb, \(pricing.spendMinor),
                \(lines)::jsonb, \(pricing.paidTotalMinor), \(commit.holdID)::bigint, \(commit.redeemPoints)) AS r
            """)
    }

    /// Commits several tills' purchases in one call and one transaction (`pos_commit_batch`). Each item succeeds
    /// or fails on its own, exactly as `commit` would; the batch as a whole fails only when PostgreSQL does not
    /// answer, and then every item gets that error (nothing was written: the batch is one transaction).
    public func commitBatch(_ items: [(POSCommit, POSCommitPricing)]) async -> [Result<(result: CommitResult, member: Data), LedgerStoreError>] {
        precondition(!items.isEmpty && items.count <= Self.maximumBatch, "batches are 1-\(Self.maximumBatch) commits")
        var objects: [[String: Any]] = []
        var failures: [Int: LedgerStoreError] = [:]
        for (index, (commit, pricing)) in items.enumerated() {
            do {
                let key = try Self.key(terminalID: commit.terminalID, "commit", commit.posTransactionID)
                let lines = String(decoding: try JSONEncoder().encode(pricing.lines), as: UTF8.self)
                var object: [String: Any] = [
                    "scope": key.scope, "key": key.key,
                    "hash": requestHash("pos-commit", commit).map { String(format: "%02x", $0) }.joined(),
                    "terminal_id": commit.terminalID, "pos_transaction_id": commit.posTransactionID,
                    "member_id": commit.memberID, "unit": pricing.unit.rawValue, "award": pricing.award,
                    "available_at": Self.timestamp(pricing.availableAt), "occurred_at": Self.timestamp(commit.purchasedAt),
                    "explanation": pricing.explanationJSON, "spend_minor": pricing.spendMinor, "lines": lines,
                    "paid_total_minor": pricing.paidTotalMinor, "redeem": commit.redeemPoints,
                ]
                if let tier = pricing.pricedAtTier { object["tier_code"] = tier }
                if let expiresAt = pricing.expiresAt { object["expires_at"] = Self.timestamp(expiresAt) }
                if let version = pricing.rulesVersion { object["rules_version"] = version }
                if let hold = commit.holdID { object["hold_id"] = hold }
                objects.append(object)
            } catch let error as LedgerStoreError {
                failures[index] = error
            } catch {
                failures[index] = .invalidAmount("lines could not be encoded: \(error)")
            }
        }
        // Items that could not even be encoded are answered without the database; the rest go in one call.
        let sent = items.indices.filter { failures[$0] == nil }
        var answers: [Int: Result<(result: CommitResult, member: Data), LedgerStoreError>] = failures.mapValues { .failure($0) }
        if !sent.isEmpty {
            let replies: [Any]
            do {
                let payload = String(decoding: try JSONSerialization.data(withJSONObject: objects), as: UTF8.self)
                let text = try await callText("SELECT pos_commit_batch(\(payload)::jsonb)::text")
                guard let array = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [Any], array.count == sent.count else {
                    throw LedgerStoreError.invariantViolated("pos_commit_batch answered a different number of items")
                }
                replies = array
            } catch {
                let failure = (error as? LedgerStoreError) ?? .invariantViolated("\(error)")
                for index in sent { answers[index] = .failure(failure) }
                replies = []
            }
            for (index, reply) in zip(sent, replies) {
                answers[index] = Self.batchAnswer(reply)
            }
        }
        return items.indices.map { answers[$0]! }
    }

    /// Most commits in one batch call; PostgreSQL caches 64 subtransactions per backend and each item is one.
    public static let maximumBatch = 32

    static func batchAnswer(_ reply: Any) -> Result<(result: CommitResult, member: Data), LedgerStoreError> {
        guard let object = reply as? [String: Any] else { return .failure(.invariantViolated("a batch item answered nothing")) }
        if let error = object["e"] as? [String: Any] {
            let state = error["state"] as? String ?? "XX000"
            let message = error["message"] as? String ?? "error"
            let detail = error["detail"] as? String
            return .failure(LedgerStoreError.from(state: state, detail: detail, description: "\(message) (SQLSTATE \(state))"))
        }
        do {
            let response = try JSONSerialization.data(withJSONObject: object["r"] ?? [:])
            let member = try JSONSerialization.data(withJSONObject: object["m"] ?? [:])
            return .success((try JSONDecoder().decode(CommitResult.self, from: response), member))
        } catch {
            return .failure(.invariantViolated("unexpected pos_commit_batch reply (\(error)); are the migrations current?"))
        }
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Voids the purchase committed under the id on this terminal, or else releases the hold taken under it.
    public func cancel(terminalID: String, posTransactionID: String) async throws(LedgerStoreError) -> (result: CancelResult, member: Data) {
        let key = try Self.key(terminalID: terminalID, "cancel", posTransactionID)
        let hash = ByteBuffer(bytes: requestHash("pos-cancel", ["txn": posTransactionID]))
        return try await write(
            """
            SELECT r - 'member', r -> 'member' FROM pos_cancel(\(key.scope), \(key.key), \(hash), \(terminalID),
                \(posTransactionID), \(terminalID)) AS r
            """)
    }

    /// Returns lines of a purchase. The amounts are planned here from the purchase's current state
    /// (`RefundPlan`); when another refund of the same purchase lands first, the plan is made again.
    public func refund(_ refund: POSRefund) async throws(LedgerStoreError) -> (result: RefundResult, member: Data) {
        let key = try Self.key(terminalID: refund.terminalID, "refund", refund.refundID)
        let hash = ByteBuffer(bytes: requestHash("pos-refund", refund))
        var attempt = 0
        while true {
            attempt += 1
            guard let record = try await checkout(terminalID: refund.originalTerminalID, posTransactionID: refund.originalPOSTransactionID)
            else {
                // A replay of a refund whose purchase is gone cannot happen (purchases are never deleted).
                throw .unknownTransaction(terminalID: refund.originalTerminalID, posTransactionID: refund.originalPOSTransactionID)
            }
            // An unplannable refund may still be a replay of one that was planned and applied: the function
            // answers replays before it looks at the plan, so send a zero plan and let the key decide.
            var plan: RefundPlan?
            var planError: ProportionalReversalError?
            do {
                plan = try RefundPlan.plan(
                    lines: record.lines, returnedBefore: record.returned, returning: refund.returning,
                    redeemedPoints: record.redeemed, refundedBeforeMinor: record.refundedMinor)
            } catch {
                planError = error
            }
            let returned: String
            do {
                returned = String(decoding: try JSONEncoder().encode(plan?.returnedAfter ?? record.returned), as: UTF8.self)
            } catch {
                throw .invalidAmount("returned quantities could not be encoded: \(error)")
            }
            do {
                let written: (result: RefundResult, member: Data) = try await write(
                    """
                    SELECT r - 'member', r -> 'member' FROM pos_refund(\(key.scope), \(key.key), \(hash),
                        \(refund.originalTerminalID), \(refund.originalPOSTransactionID), \(Int32(planError == nil ? record.refundVersion : -1)),
                        \(returned)::jsonb, \(plan?.refundedMinor ?? 0), \(plan?.awardToReverse ?? 0), \(plan?.pointsToRestore ?? 0),
                        \(Date()), \(refund.terminalID), \(refund.explanationJSON)::jsonb, false) AS r
                    """)
                return written
            } catch .refundConflict(let id) {
                if let planError { throw .invalidRefund(planError) }
                guard attempt < Self.refundAttempts else { throw .refundConflict(posTransactionID: id) }
            }
        }
    }

    // MARK: Plumbing

    static func key(terminalID: String, _ operation: String, _ id: String) throws(LedgerStoreError) -> IdempotencyKey {
        guard !id.isEmpty, id.utf8.count <= maximumTransactionIDBytes else {
            throw .invalidAmount("\(operation) id must be 1-\(maximumTransactionIDBytes) bytes")
        }
        return try IdempotencyKey(scope: "pos:\(terminalID)", key: "\(operation):\(id)")
    }

    private func write<Result: Decodable>(
        decoder: JSONDecoder = LedgerJSON.decoder, _ query: PostgresQuery
    ) async throws(LedgerStoreError) -> (Result, Data) {
        var pair: (String, String)?
        do {
            pair = try await committed(query) { rows in
                var last: (String, String)?
                for try await row in rows.decode((String, String).self) { last = row }
                return last
            }
        } catch {
            throw LedgerStoreError.from(error)
        }
        guard let (response, member) = pair else { throw .invariantViolated("a POS function returned no row") }
        return (try decode(Result.self, response, decoder: decoder), Data(member.utf8))
    }

    private func callText(_ query: PostgresQuery) async throws(LedgerStoreError) -> String {
        let text: String?
        do {
            text = try await committed(query) { rows in
                var last: String?
                for try await value in rows.decode(String?.self) { last = value }  // read to the end: one row
                return last
            }
        } catch {
            throw LedgerStoreError.from(error)
        }
        guard let text else { throw .invariantViolated("a POS function returned no row") }
        return text
    }

    /// Runs a write and hands its rows on only once PostgreSQL committed it. postgres-nio ends a query at
    /// CommandComplete, but in the extended protocol an implicit transaction commits at Sync, after it; a backend
    /// stopped in between (fast or immediate shutdown) flushes the CommandComplete with its farewell message, so the
    /// rows of a write that never committed would reach the till as OK. A following statement on the same connection
    /// is answered only after ReadyForQuery, i.e. after the commit; if it fails, the till retries with the same key.
    /// Found by the chaos run (loadtests/chaos.sh). Costs one short round trip per write or commit batch.
    private func committed<T>(_ query: PostgresQuery, _ read: (PostgresRowSequence) async throws -> T) async throws -> T {
        try await client.withConnection { connection in
            let value = try await read(try await connection.query(query, logger: logger))
            _ = try await connection.query("SELECT 1", logger: logger)
            return value
        }
    }

    private func optionalText(_ query: PostgresQuery) async throws(LedgerStoreError) -> String? {
        do {
            let rows = try await client.query(query, logger: logger)
            for try await text in rows.decode(String?.self) { return text }
            return nil
        } catch {
            throw LedgerStoreError.from(error)
        }
    }

    private func decode<Result: Decodable>(
        _ type: Result.Type, _ text: String, decoder: JSONDecoder = LedgerJSON.decoder
    ) throws(LedgerStoreError) -> Result {
        do {
            return try decoder.decode(Result.self, from: Data(text.utf8))
        } catch {
            throw .invariantViolated("unexpected POS function reply (\(error)); are the migrations current?")
        }
    }
}

/// How a till names a member.
public enum MemberIdentifier: Sendable, Hashable {
    case memberID(Int64)
    case card(String)
    case phone(String)
}

/// What pricing a basket needs from the member's row.
public struct MemberPricing: Sendable, Codable, Equatable {
    public var memberId: Int64
    public var tierCode: String
    public var tierRateOverrideBp: Int64?
    public var status: String
    public var availablePoints: Int64
    /// Live multiplier campaigns whose segment the member is in (the evaluator's `memberSegments`).
    public var campaignSegments: [Int64]?

    public init(memberId: Int64, tierCode: String, tierRateOverrideBp: Int64?, status: String, availablePoints: Int64,
                campaignSegments: [Int64]?) {
        self.memberId = memberId
        self.tierCode = tierCode
        self.tierRateOverrideBp = tierRateOverrideBp
        self.status = status
        self.availablePoints = availablePoints
        self.campaignSegments = campaignSegments
    }
}

/// A hold as the till asked for it (hashed for idempotency: a retry sends the same fields).
public struct POSHold: Sendable, Codable, Equatable {
    public var terminalID: String
    public var posTransactionID: String
    public var memberID: Int64
    public var points: Int64
    public var holdSeconds: Int

    public init(terminalID: String, posTransactionID: String, memberID: Int64, points: Int64, holdSeconds: Int) {
        self.terminalID = terminalID
        self.posTransactionID = posTransactionID
        self.memberID = memberID
        self.points = points
        self.holdSeconds = holdSeconds
    }
}

/// A commit as the till asked for it. Only these fields are hashed: what the server computes from them (the
/// award, under the rules of the purchase time) may differ on a retry without making it a different request.
public struct POSCommit: Sendable, Codable, Equatable {
    public var terminalID: String
    public var posTransactionID: String
    public var memberID: Int64
    public var basket: Basket
    public var holdID: Int64?
    public var redeemPoints: Int64
    /// As the till sent it (0 = now), so a retry hashes the same.
    public var purchasedAtMs: Int64
    /// The resolved purchase time; not hashed.
    public var purchasedAt: Date

    public init(terminalID: String, posTransactionID: String, memberID: Int64, basket: Basket, holdID: Int64?,
                redeemPoints: Int64, purchasedAtMs: Int64, purchasedAt: Date) {
        self.purchasedAtMs = purchasedAtMs
        self.terminalID = terminalID
        self.posTransactionID = posTransactionID
        self.memberID = memberID
        self.basket = basket
        self.holdID = holdID
        self.redeemPoints = redeemPoints
        self.purchasedAt = purchasedAt
    }

    enum CodingKeys: String, CodingKey {
        case terminalID, posTransactionID, memberID, basket, holdID, redeemPoints, purchasedAtMs
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        terminalID = try container.decode(String.self, forKey: .terminalID)
        posTransactionID = try container.decode(String.self, forKey: .posTransactionID)
        memberID = try container.decode(Int64.self, forKey: .memberID)
        basket = try container.decode(Basket.self, forKey: .basket)
        holdID = try container.decodeIfPresent(Int64.self, forKey: .holdID)
        redeemPoints = try container.decode(Int64.self, forKey: .redeemPoints)
        purchasedAtMs = try container.decode(Int64.self, forKey: .purchasedAtMs)
        purchasedAt = purchasedAtMs == 0 ? Date() : Date(timeIntervalSince1970: Double(purchasedAtMs) / 1_000)
    }
}

/// What the server computed for a commit from the rules in force at the purchase time.
public struct POSCommitPricing: Sendable, Equatable {
    public var pricedAtTier: String?
    public var unit: LedgerUnit
    public var award: Int64
    public var availableAt: Date
    public var expiresAt: Date?
    public var rulesVersion: String?
    public var explanationJSON: String
    public var spendMinor: Int64
    public var paidTotalMinor: Int64
    public var lines: [CheckoutLine]

    public init(pricedAtTier: String?, unit: LedgerUnit, award: Int64, availableAt: Date, expiresAt: Date?,
                rulesVersion: String?, explanationJSON: String, spendMinor: Int64, paidTotalMinor: Int64,
                lines: [CheckoutLine]) {
        self.pricedAtTier = pricedAtTier
        self.unit = unit
        self.award = award
        self.availableAt = availableAt
        self.expiresAt = expiresAt
        self.rulesVersion = rulesVersion
        self.explanationJSON = explanationJSON
        self.spendMinor = spendMinor
        self.paidTotalMinor = paidTotalMinor
        self.lines = lines
    }
}

public struct POSRefund: Sendable, Codable, Equatable {
    public var terminalID: String
    public var refundID: String
    public var originalTerminalID: String
    public var originalPOSTransactionID: String
    /// Quantity per line id coming back.
    public var returning: [String: Int64]
    public var explanationJSON: String

    public init(terminalID: String, refundID: String, originalTerminalID: String, originalPOSTransactionID: String,
                returning: [String: Int64]) {
        self.terminalID = terminalID
        self.refundID = refundID
        self.originalTerminalID = originalTerminalID
        self.originalPOSTransactionID = originalPOSTransactionID
        self.returning = returning
        self.explanationJSON = "{\"refund_id\":\(Self.jsonString(refundID))}"
    }

    static func jsonString(_ text: String) -> String {
        (try? String(decoding: JSONEncoder().encode(text), as: UTF8.self)) ?? "\"\""
    }
}

public struct CheckoutRecord: Sendable, Codable, Equatable {
    public var memberId: Int64
    public var unit: LedgerUnit
    public var awarded: Int64
    public var redeemed: Int64
    public var paidTotalMinor: Int64
    public var lines: [CheckoutLine]
    public var returned: [String: Int64]
    public var refundedMinor: Int64
    public var refundVersion: Int
    public var voided: Bool
    public var rulesVersion: String?

    enum CodingKeys: String, CodingKey {
        case memberId = "member_id", unit, awarded, redeemed, paidTotalMinor = "paid_total_minor", lines, returned
        case refundedMinor = "refunded_minor", refundVersion = "refund_version", voided, rulesVersion = "rules_version"
    }
}

public struct CommitResult: Sendable, Codable, Equatable {
    public var accrualEntryId: Int64
    public var redemptionEntryId: Int64
    public var awarded: Int64
    public var redeemed: Int64
    public var unit: LedgerUnit
    public var rulesVersion: String?
    public var tierChange: TierChange?
    public var points: MemberBalances
    /// As recorded by the first commit: a replay answers with these, not with a new pricing.
    public var lines: [CheckoutLine]
    public var replayed: Bool

    // Explicit keys and a plain decoder: the lines carry their own snake_case keys.
    enum CodingKeys: String, CodingKey {
        case accrualEntryId = "accrual_entry_id", redemptionEntryId = "redemption_entry_id", awarded, redeemed, unit
        case rulesVersion = "rules_version", tierChange = "tier_change", points, lines, replayed
    }
}

public struct HoldResult: Sendable, Codable, Equatable {
    public var holdId: Int64
    public var balances: MemberBalances
    public var expiresAtMs: Int64
    public var replayed: Bool
}

public struct CancelResult: Sendable, Codable, Equatable {
    public var cancelled: String
    public var memberId: Int64
    public var awardReversed: Int64
    public var pointsRestored: Int64
    public var points: MemberBalances
    public var replayed: Bool
}

public struct RefundResult: Sendable, Codable, Equatable {
    public var awardReversed: Int64
    public var pointsRestored: Int64
    public var unit: LedgerUnit
    public var refundedMinor: Int64
    public var awardUnrecovered: Int64
    public var points: MemberBalances
    public var replayed: Bool
}
