import Foundation
import Logging
import LoyaltyCore
import NIOCore
import PostgresNIO

/// The till's reads in PostgreSQL (member snapshots for lookups and pricing), and the request types and keys the
/// writes share. The writes themselves go through `CheckoutWriter` (libpq in pipeline mode).
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

    /// The member's snapshot in the cache's JSON form (with its pricing facts), looked up by one identifier. Nil:
    /// no such member.
    public func snapshot(_ identifier: MemberIdentifier) async throws(LedgerStoreError) -> Data? {
        let query: PostgresQuery =
            switch identifier {
            case .memberID(let id): "SELECT pos_member_snapshot(member_id)::text FROM members WHERE member_id = \(id)"
            case .card(let card): "SELECT pos_member_snapshot(member_id)::text FROM members WHERE card_number = \(card)"
            case .phone(let phone): "SELECT pos_member_snapshot(member_id)::text FROM members WHERE phone = \(phone)"
            }
        return try await optionalText(query).map { Data($0.utf8) }
    }

    // MARK: Plumbing

    static func key(terminalID: String, _ operation: String, _ id: String) throws(LedgerStoreError) -> IdempotencyKey {
        guard !id.isEmpty, id.utf8.count <= maximumTransactionIDBytes else {
            throw .invalidAmount("\(operation) id must be 1-\(maximumTransactionIDBytes) bytes")
        }
        return try IdempotencyKey(scope: "pos:\(terminalID)", key: "\(operation):\(id)")
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
    /// The `campaigns_version` of the campaigns the basket was priced with; the ledger refuses the commit
    /// (campaigns_changed) when it moved since. Nil: not checked.
    public var campaignsVersion: Int64?

    public init(pricedAtTier: String?, unit: LedgerUnit, award: Int64, availableAt: Date, expiresAt: Date?,
                rulesVersion: String?, explanationJSON: String, campaignsVersion: Int64? = nil, spendMinor: Int64,
                paidTotalMinor: Int64, lines: [CheckoutLine]) {
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
        self.campaignsVersion = campaignsVersion
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
        self.explanationJSON = "{\"refund_id\":\(JSONText.quoted(refundID))}"
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
