import Foundation
import Logging
import PostgresNIO

/// Tier changes made through the admin API: each checks the whole ladder, writes the tier and its audit row in one
/// transaction that locks the tiers table against concurrent tier changes (the same lock `upsert` takes).
extension TierStore {
    /// Upper bound on the ladder; every checkout prices against it, so it stays small.
    public static let maximumTiers = 32

    public static func resource(_ code: String) -> String { "tier:\(code)" }

    /// The tier with `code`, or nil.
    public func tier(code: String) async throws -> Tier? {
        try await list().first { $0.code == code }
    }

    /// Adds a tier; a code in use is `exists` (change it with `update`).
    public func create(_ tier: Tier, audit: AuditContext) async throws -> Tier {
        try Self.checkFields(tier)
        return try await change(audit: audit) { tiers in
            guard !tiers.contains(where: { $0.code == tier.code }) else { throw TierChangeError.exists(code: tier.code) }
            guard tiers.count < Self.maximumTiers else { throw TierChangeError.tooMany(limit: Self.maximumTiers) }
            return ("tier.create", tier.code, nil, tier)
        }
    }

    /// Replaces the tier `code` with what `edit` makes of it (the code itself cannot change).
    public func update(
        code: String, audit: AuditContext, _ edit: @escaping @Sendable (Tier) throws -> Tier
    ) async throws -> Tier {
        try await change(audit: audit) { tiers in
            guard let before = tiers.first(where: { $0.code == code }) else { throw TierChangeError.unknown(code: code) }
            var after = try edit(before)
            after.code = before.code
            after.tierId = before.tierId
            try Self.checkFields(after)
            return ("tier.update", code, before, after)
        }
    }

    /// Removes an unused tier and returns it; a tier members are in is `inUse`.
    public func delete(code: String, audit: AuditContext) async throws -> Tier {
        try await change(audit: audit) { tiers in
            guard let before = tiers.first(where: { $0.code == code }) else { throw TierChangeError.unknown(code: code) }
            return ("tier.delete", code, before, nil)
        }
    }

    /// Locks the tiers, lets `plan` decide (action, code, before, after) from the current ladder, checks the
    /// ladder that would result, writes it and its audit row. Returns the tier after (or, for a delete, before).
    private func change(
        audit: AuditContext,
        _ plan: @escaping @Sendable ([Tier]) throws -> (action: String, code: String, before: Tier?, after: Tier?)
    ) async throws -> Tier {
        let logger = self.logger
        return try await client.transaction(logger: logger) { connection in
            try await connection.query("LOCK TABLE tiers IN SHARE ROW EXCLUSIVE MODE", logger: logger)
            let tiers = try await Self.list(on: connection, logger: logger)
            let (action, code, before, after) = try plan(tiers)
            var ladder = tiers.filter { $0.code != code }
            if let after {
                if let other = ladder.first(where: { $0.rank == after.rank }) {
                    throw TierChangeError.rankTaken(rank: after.rank, by: other.code)
                }
                ladder.append(after)
            }
            try Self.checkLadder(ladder)
            var saved = after
            if let after {
                saved = try await Self.write(after, on: connection, logger: logger)
            } else {
                try await Self.remove(code: code, on: connection, logger: logger)
            }
            try await AuditLogStore.write(
                AuditRecord(action: action, resource: Self.resource(code), before: before?.auditValue ?? .null,
                            after: saved?.auditValue ?? .null),
                context: audit, on: connection, logger: logger)
            guard let result = saved ?? before else { throw TierChangeError.unknown(code: code) }
            return result
        }
    }

    /// Inserts or updates (by code) one tier; the caller holds the ladder lock and has validated the ladder.
    static func write(_ tier: Tier, on connection: PostgresConnection, logger: Logger) async throws -> Tier {
        let rows = try await connection.query(
            """
            INSERT INTO tiers (code, name, rank, qualification_spend_minor, qualification_window_days, earn_rate_override_bp)
            VALUES (\(tier.code), \(tier.name), \(tier.rank), \(tier.qualificationSpendMinor),
                    \(tier.qualificationWindowDays), \(tier.earnRateOverrideBp))
            ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, rank = EXCLUDED.rank,
                qualification_spend_minor = EXCLUDED.qualification_spend_minor,
                qualification_window_days = EXCLUDED.qualification_window_days,
                earn_rate_override_bp = EXCLUDED.earn_rate_override_bp, updated_at = now()
            RETURNING tier_id
            """, logger: logger)
        var saved = tier
        for try await id in rows.decode(Int64.self) { saved.tierId = id }
        return saved
    }

    /// Deletes the tier unless a member (erased ones too: they keep their tier id) is in it.
    private static func remove(code: String, on connection: PostgresConnection, logger: Logger) async throws {
        let rows = try await connection.query(
            "SELECT count(*)::int8 FROM members m JOIN tiers t USING (tier_id) WHERE t.code = \(code)", logger: logger)
        var members: Int64 = 0
        for try await count in rows.decode(Int64.self) { members = count }
        guard members == 0 else { throw TierChangeError.inUse(code: code, members: members) }
        // tier_changes keeps history rows pointing at tiers; such a tier is in use by the history.
        let history = try await connection.query(
            """
            SELECT count(*)::int8 FROM tier_changes c JOIN tiers t ON t.tier_id IN (c.from_tier_id, c.to_tier_id)
            WHERE t.code = \(code)
            """, logger: logger)
        var changes: Int64 = 0
        for try await count in history.decode(Int64.self) { changes = count }
        guard changes == 0 else { throw TierChangeError.inHistory(code: code, changes: changes) }
        try await connection.query("DELETE FROM tiers WHERE code = \(code)", logger: logger)
    }

    /// 1-32 of a-z 0-9 _ starting with a letter (the tiers table's CHECK), checked by bytes: a regular expression's
    /// `$` would also match before a trailing newline.
    public static func isValidCode(_ code: String) -> Bool {
        let bytes = Array(code.utf8)
        guard let first = bytes.first, (1...32).contains(bytes.count), first >= 0x61, first <= 0x7A else { return false }
        return bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: "_") }
    }

    /// The tiers table's CHECK constraints, with the API's field names.
    static func checkFields(_ tier: Tier) throws(TierChangeError) {
        guard isValidCode(tier.code) else {
            throw .invalid(field: "code", reason: "must be 1-32 of a-z 0-9 _ starting with a letter")
        }
        guard PrintableText.isAcceptable(tier.name, length: 1...100) else { throw .invalid(field: "name", reason: "must be 1-100 characters, none of them control characters") }
        guard (0...1_000_000).contains(tier.rank) else { throw .invalid(field: "rank", reason: "must be 0-1000000") }
        guard tier.qualificationSpendMinor >= 0 else {
            throw .invalid(field: "qualification_spend_minor", reason: "must not be negative")
        }
        guard (1...3660).contains(tier.qualificationWindowDays) else {
            throw .invalid(field: "qualification_window_days", reason: "must be 1-3660")
        }
        if let rate = tier.earnRateOverrideBp, !(0...100_000).contains(rate) {
            throw .invalid(field: "earn_rate_override_bp", reason: "must be 0-100000 or null")
        }
    }

    /// `validateLadder`, with its refusals as `TierChangeError`.
    static func checkLadder(_ tiers: [Tier]) throws(TierChangeError) {
        do {
            try validateLadder(tiers)
        } catch .thresholdsNotIncreasing(let lower, let higher) {
            throw .thresholdsNotIncreasing(lower: lower, higher: higher)
        } catch {
            throw .ladder(error.description.replacingOccurrences(of: "invalid tier: ", with: ""))
        }
    }
}

extension Tier {
    /// The tier as the audit log records it (the API's field names).
    var auditValue: JSONValue {
        .object([
            "tier_id": tierId.map { .integer($0) } ?? .null, "code": .string(code), "name": .string(name),
            "rank": .integer(Int64(rank)), "qualification_spend_minor": .integer(qualificationSpendMinor),
            "qualification_window_days": .integer(Int64(qualificationWindowDays)),
            "earn_rate_override_bp": earnRateOverrideBp.map { .integer(Int64($0)) } ?? .null,
        ])
    }
}
