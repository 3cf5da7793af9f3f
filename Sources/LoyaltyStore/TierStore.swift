import Foundation
import Logging
import PostgresNIO

/// A tier as configured by an admin.
public struct Tier: Sendable, Codable, Equatable {
    public var tierId: Int64?
    public var code: String
    public var name: String
    public var rank: Int
    /// Spend (minor units) over the rolling window that qualifies a member.
    public var qualificationSpendMinor: Int64
    public var qualificationWindowDays: Int
    /// Earn rate in basis points replacing the program's base rate; nil keeps the rules' rate for this tier.
    public var earnRateOverrideBp: Int?

    public init(
        tierId: Int64? = nil, code: String, name: String, rank: Int, qualificationSpendMinor: Int64,
        qualificationWindowDays: Int, earnRateOverrideBp: Int? = nil
    ) {
        self.tierId = tierId
        self.code = code
        self.name = name
        self.rank = rank
        self.qualificationSpendMinor = qualificationSpendMinor
        self.qualificationWindowDays = qualificationWindowDays
        self.earnRateOverrideBp = earnRateOverrideBp
    }
}

public enum TierError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case thresholdsNotIncreasing(lower: String, higher: String)
    case unknownTier(String)
    case inUse(String, members: Int)

    public var description: String {
        switch self {
        case .invalid(let text): "invalid tier: \(text)"
        case .thresholdsNotIncreasing(let lower, let higher):
            "tier '\(higher)' ranks above '\(lower)' but does not need more spend; thresholds must rise with rank"
        case .unknownTier(let code): "unknown tier '\(code)'"
        case .inUse(let code, let members): "tier '\(code)' still has \(members) members; move them first"
        }
    }
}

/// Tiers in PostgreSQL. Every change is validated against all tiers together, inside one transaction that
/// locks the table against concurrent tier changes: ranks unique, the lowest rank needs no spend, thresholds rise
/// strictly with rank.
public struct TierStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func list() async throws -> [Tier] {
        try await client.withConnection { try await Self.list(on: $0, logger: logger) }
    }

    /// Inserts or updates (by code) a tier.
    public func upsert(_ tier: Tier) async throws -> Tier {
        try Self.validateFields(tier)
        return try await client.transaction(logger: logger) { connection in
            try await connection.query("LOCK TABLE tiers IN SHARE ROW EXCLUSIVE MODE", logger: logger)
            var tiers = try await Self.list(on: connection, logger: logger).filter { $0.code != tier.code }
            tiers.append(tier)
            try Self.validateLadder(tiers)
            return try await Self.write(tier, on: connection, logger: logger)
        }
    }

    public func delete(code: String) async throws {
        try await client.transaction(logger: logger) { connection in
            try await connection.query("LOCK TABLE tiers IN SHARE ROW EXCLUSIVE MODE", logger: logger)
            let rows = try await connection.query(
                "SELECT count(m.member_id)::int8 FROM tiers t LEFT JOIN members m USING (tier_id) WHERE t.code = \(code) GROUP BY t.tier_id",
                logger: logger)
            var members: Int?
            for try await count in rows.decode(Int.self) { members = count }
            guard let members else { throw TierError.unknownTier(code) }
            guard members == 0 else { throw TierError.inUse(code, members: members) }
            let remaining = try await Self.list(on: connection, logger: logger).filter { $0.code != code }
            try Self.validateLadder(remaining)
            try await connection.query("DELETE FROM tiers WHERE code = \(code)", logger: logger)
        }
    }

    /// One batch of the tier review: how many members it looked at and changed, and the changed members with
    /// their new ledger versions (a review that changes a tier raises the version, so cached snapshots can be
    /// marked old).
    public struct ReviewBatch: Sendable, Equatable {
        public var reviewed: Int
        public var upgraded: Int
        public var downgraded: Int
        public var changed: [(memberID: Int64, ledgerVersion: Int64)]

        public static func == (left: Self, right: Self) -> Bool {
            left.reviewed == right.reviewed && left.upgraded == right.upgraded && left.downgraded == right.downgraded
                && left.changed.elementsEqual(right.changed) { $0 == $1 }
        }
    }

    /// Runs one batch of the tier review (members not reviewed for `reviewDays`).
    public func reviewBatch(batchSize: Int, reviewDays: Int, graceDays: Int, actor: String = "job:tier-review")
        async throws -> ReviewBatch
    {
        precondition(batchSize > 0 && batchSize <= 10_000 && reviewDays >= 0 && graceDays >= 0)
        let rows = try await client.query(
            "SELECT tier_review_due(\(Int32(batchSize)), \(Int32(reviewDays)), \(Int32(graceDays)), \(actor))::text",
            logger: logger)
        for try await text in rows.decode(String.self) {
            let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
            let changed = (object["changed"] as? [[Any]] ?? []).compactMap { pair -> (Int64, Int64)? in
                guard pair.count == 2, let id = (pair[0] as? NSNumber)?.int64Value, let version = (pair[1] as? NSNumber)?.int64Value
                else { return nil }
                return (id, version)
            }
            return ReviewBatch(reviewed: object["reviewed"] as? Int ?? 0, upgraded: object["upgraded"] as? Int ?? 0,
                               downgraded: object["downgraded"] as? Int ?? 0, changed: changed)
        }
        return ReviewBatch(reviewed: 0, upgraded: 0, downgraded: 0, changed: [])
    }

    /// The member's current tier code.
    public func tierCode(memberID: Int64) async throws -> String {
        let rows = try await client.query(
            "SELECT t.code FROM members m JOIN tiers t USING (tier_id) WHERE m.member_id = \(memberID)", logger: logger)
        for try await code in rows.decode(String.self) { return code }
        throw StoreError.notFound("member \(memberID)")
    }

    static func list(on connection: PostgresConnection, logger: Logger) async throws -> [Tier] {
        let rows = try await connection.query(
            """
            SELECT tier_id, code, name, rank, qualification_spend_minor, qualification_window_days, earn_rate_override_bp
            FROM tiers ORDER BY rank
            """, logger: logger)
        var tiers: [Tier] = []
        for try await (id, code, name, rank, spend, window, rate) in rows.decode((Int64, String, String, Int, Int64, Int, Int?).self) {
            tiers.append(Tier(tierId: id, code: code, name: name, rank: rank, qualificationSpendMinor: spend,
                              qualificationWindowDays: window, earnRateOverrideBp: rate))
        }
        return tiers
    }

    static func validateFields(_ tier: Tier) throws(TierError) {
        guard tier.code.range(of: "^[a-z][a-z0-9_]{0,31}$", options: .regularExpression) != nil else {
            throw .invalid("code '\(tier.code)' must be lower_snake_case, 1-32 characters")
        }
        guard !tier.name.isEmpty, tier.name.count <= 100 else { throw .invalid("name must be 1-100 characters") }
        guard tier.rank >= 0 else { throw .invalid("rank must be 0 or more") }
        guard tier.qualificationSpendMinor >= 0 else { throw .invalid("qualification_spend_minor must not be negative") }
        guard (1...3660).contains(tier.qualificationWindowDays) else { throw .invalid("qualification_window_days must be 1-3660") }
        if let rate = tier.earnRateOverrideBp, !(0...100_000).contains(rate) {
            throw .invalid("earn_rate_override_bp must be 0-100000")
        }
    }

    /// Ranks unique, lowest rank at spend 0 (every member qualifies for something), thresholds strictly rising.
    static func validateLadder(_ tiers: [Tier]) throws(TierError) {
        let sorted = tiers.sorted { $0.rank < $1.rank }
        guard let lowest = sorted.first else { throw .invalid("at least one tier must remain") }
        guard lowest.qualificationSpendMinor == 0 else {
            throw .invalid("the lowest tier '\(lowest.code)' must need no spend (qualification_spend_minor 0)")
        }
        for (lower, higher) in zip(sorted, sorted.dropFirst()) {
            guard lower.rank != higher.rank else { throw .invalid("tiers '\(lower.code)' and '\(higher.code)' share rank \(lower.rank)") }
            guard higher.qualificationSpendMinor > lower.qualificationSpendMinor else {
                throw .thresholdsNotIncreasing(lower: lower.code, higher: higher.code)
            }
        }
    }
}
