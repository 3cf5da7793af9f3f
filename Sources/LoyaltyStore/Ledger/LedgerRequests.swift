import Crypto
import Foundation
import LoyaltyCore

/// Who asked and under which key. The same (scope, key) with the same request returns the first result; with a
/// different request it is refused. Scope is the caller: a terminal id, an admin token id, a job name.
public struct IdempotencyKey: Sendable, Hashable {
    /// Upper bound, so keys stay index-friendly and a client cannot store megabytes in one.
    public static let maximumKeyLength = 128

    public var scope: String
    public var key: String

    public init(scope: String, key: String) throws(LedgerStoreError) {
        guard !scope.isEmpty, scope.utf8.count <= 128 else { throw .invalidAmount("idempotency scope must be 1-128 bytes") }
        guard !key.isEmpty, key.utf8.count <= Self.maximumKeyLength else {
            throw .invalidAmount("idempotency key must be 1-\(Self.maximumKeyLength) bytes")
        }
        self.scope = scope
        self.key = key
    }
}

/// The hash stored with an idempotency key: SHA-256 of the request's canonical JSON (sorted keys).
func requestHash<Request: Encodable>(_ operation: String, _ request: Request) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.dateEncodingStrategy = .millisecondsSince1970
    return requestHash(operation, json: (try? encoder.encode(request)).map(Array.init) ?? [])
}

/// The hash of a request whose canonical JSON is already written (`POSCommit.requestHash`).
func requestHash(_ operation: String, json: [UInt8]) -> [UInt8] {
    var hasher = SHA256()
    hasher.update(data: Array(operation.utf8) + [0])
    hasher.update(data: json)
    return Array(hasher.finalize())
}

public struct AccrualRequest: Sendable, Codable, Equatable {
    public var memberID: Int64
    public var unit: LedgerUnit
    public var amount: Int64
    /// End of the return window; at or before now the points are available at once.
    public var availableAt: Date
    public var expiresAt: Date?
    /// When the purchase happened (a till replaying offline sales sends the original time).
    public var occurredAt: Date
    public var actor: String
    public var rulesVersion: String?
    /// JSON explanation: which rule, tier and campaign gave what, per line.
    public var explanationJSON: String
    /// What the purchase paid, for tier qualification (0 for accruals that are not purchases).
    public var spendMinor: Int64

    public init(
        memberID: Int64, unit: LedgerUnit, amount: Int64, availableAt: Date, expiresAt: Date?, occurredAt: Date,
        actor: String, rulesVersion: String? = nil, explanationJSON: String = "{}", spendMinor: Int64 = 0
    ) {
        self.spendMinor = spendMinor
        self.memberID = memberID
        self.unit = unit
        self.amount = amount
        self.availableAt = availableAt
        self.expiresAt = expiresAt
        self.occurredAt = occurredAt
        self.actor = actor
        self.rulesVersion = rulesVersion
        self.explanationJSON = explanationJSON
    }
}

public struct HoldRequest: Sendable, Codable, Equatable {
    public var memberID: Int64
    public var unit: LedgerUnit
    public var amount: Int64
    public var expiresAt: Date
    public var actor: String

    public init(memberID: Int64, unit: LedgerUnit, amount: Int64, expiresAt: Date, actor: String) {
        self.memberID = memberID
        self.unit = unit
        self.amount = amount
        self.expiresAt = expiresAt
        self.actor = actor
    }
}

public struct RedemptionRequest: Sendable, Codable, Equatable {
    public var memberID: Int64
    public var unit: LedgerUnit
    public var amount: Int64
    /// Redeem from this hold (the rest of it is released); nil redeems from available points.
    public var holdID: Int64?
    public var occurredAt: Date
    public var actor: String
    public var explanationJSON: String

    public init(
        memberID: Int64, unit: LedgerUnit, amount: Int64, holdID: Int64?, occurredAt: Date, actor: String,
        explanationJSON: String = "{}"
    ) {
        self.memberID = memberID
        self.unit = unit
        self.amount = amount
        self.holdID = holdID
        self.occurredAt = occurredAt
        self.actor = actor
        self.explanationJSON = explanationJSON
    }
}

public struct ReversalRequest: Sendable, Codable, Equatable {
    public var originalEntryID: Int64
    public var amount: Int64
    public var occurredAt: Date
    public var actor: String
    public var explanationJSON: String
    /// What a return refunded, taken off the member's qualifying spend.
    public var refundedSpendMinor: Int64

    public init(
        originalEntryID: Int64, amount: Int64, occurredAt: Date, actor: String, explanationJSON: String = "{}",
        refundedSpendMinor: Int64 = 0
    ) {
        self.refundedSpendMinor = refundedSpendMinor
        self.originalEntryID = originalEntryID
        self.amount = amount
        self.occurredAt = occurredAt
        self.actor = actor
        self.explanationJSON = explanationJSON
    }
}

public struct AdjustmentRequest: Sendable, Codable, Equatable {
    public var memberID: Int64
    public var unit: LedgerUnit
    /// Positive credits, negative debits.
    public var delta: Int64
    public var reason: String
    public var actor: String
    /// When a credit's lot expires; nil with `expiresAfterDays` nil: never.
    public var expiresAt: Date?
    /// A credit's lot expires this many days after the database's now (the program's expiry, as a checkout's lot
    /// does); used when `expiresAt` is nil. Kept relative so a retry of the same request hashes the same.
    public var expiresAfterDays: Int?

    public init(
        memberID: Int64, unit: LedgerUnit, delta: Int64, reason: String, actor: String, expiresAt: Date? = nil,
        expiresAfterDays: Int? = nil
    ) {
        self.memberID = memberID
        self.unit = unit
        self.delta = delta
        self.reason = reason
        self.actor = actor
        self.expiresAt = expiresAt
        self.expiresAfterDays = expiresAfterDays
    }
}

/// A member's balances in one unit.
public struct MemberBalances: Sendable, Codable, Equatable {
    public var available: Int64
    public var pending: Int64
    public var held: Int64

    public init(available: Int64, pending: Int64, held: Int64) {
        self.available = available
        self.pending = pending
        self.held = held
    }
}

/// What a ledger operation returns, and what a retry with the same key returns again (`replayed` true).
public struct LedgerReceipt: Sendable, Codable, Equatable {
    public struct Consumption: Sendable, Codable, Equatable {
        public var lotId: Int64
        public var amount: Int64

        public init(lotId: Int64, amount: Int64) {
            self.lotId = lotId
            self.amount = amount
        }
    }

    public var entryId: Int64
    public var memberId: Int64
    public var unit: LedgerUnit
    public var ledgerVersion: Int64
    public var balances: MemberBalances
    public var replayed: Bool
    public var amount: Int64?
    public var lotId: Int64?
    public var holdId: Int64?
    public var state: String?
    public var consumed: [Consumption]?
    public var recovered: Int64?
    public var unrecovered: Int64?
    public var reversesEntryId: Int64?
    public var originalRemaining: Int64?
    public var delta: Int64?
    /// Set when this purchase moved the member to another tier.
    public var tierChange: TierChange?
}

/// A tier change: from and to tier codes, and why.
public struct TierChange: Sendable, Codable, Equatable {
    public var from: String
    public var to: String
    public var reason: String
}

/// What a batch job did.
public struct JobBatchResult: Sendable, Codable, Equatable {
    public var members: Int?
    public var lots: Int?
    public var amount: Int64?
    public var holds: Int?

    public init(members: Int? = nil, lots: Int? = nil, amount: Int64? = nil, holds: Int? = nil) {
        self.members = members
        self.lots = lots
        self.amount = amount
        self.holds = holds
    }
}
