import Foundation
import Logging
import PostgresNIO

/// One row of a member's tier history (`tier_changes`): from and to which tier, when, why and who.
public struct TierHistoryEntry: Sendable, Codable, Equatable {
    public var changeId: Int64
    public var changedAt: String
    public var fromTier: String
    public var toTier: String
    public var reason: String
    /// Qualifying spend (minor units) over the window when the change was made.
    public var spendMinor: Int64
    /// As recorded: `admin:<token id>`, a terminal id, `job:tier-review`.
    public var actor: String
    /// The token's role for `admin:<id>` actors (`admin`, `support`, ...), `terminal` for a purchase at a till,
    /// `job` for the tier review.
    public var actorRole: String
}

public struct TierHistoryPage: Sendable, Codable, Equatable {
    public var changes: [TierHistoryEntry]
    /// The change id to pass as `before` for the next (older) page; nil on the last.
    public var nextCursor: Int64?
}

extension TierStore {
    /// Upper bound on one page of tier history.
    public static let maximumHistoryPageSize = 200

    /// Newest first, cursor-paged on the change id (index tier_changes_member_idx).
    public func history(memberID: Int64, before cursor: Int64?, limit: Int) async throws -> TierHistoryPage {
        let pageSize = Int64(min(max(limit, 1), Self.maximumHistoryPageSize))
        let rows = try await client.query(
            """
            SELECT c.change_id, to_char(c.changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                f.code, t.code, c.reason, c.spend_minor, c.actor,
                CASE WHEN c.actor LIKE 'admin:%' THEN coalesce(k.role, 'admin_token')
                     WHEN c.actor LIKE 'job:%' THEN 'job'
                     ELSE 'terminal' END
            FROM tier_changes c
            JOIN tiers f ON f.tier_id = c.from_tier_id
            JOIN tiers t ON t.tier_id = c.to_tier_id
            -- CASE, so the cast only ever sees digits.
            LEFT JOIN admin_tokens k
                ON k.token_id = CASE WHEN c.actor ~ '^admin:[0-9]{1,18}$' THEN substr(c.actor, 7)::bigint END
            WHERE c.member_id = \(memberID) AND (\(cursor)::bigint IS NULL OR c.change_id < \(cursor)::bigint)
            ORDER BY c.change_id DESC
            LIMIT \(pageSize)
            """, logger: logger)
        var changes: [TierHistoryEntry] = []
        for try await (id, changedAt, from, to, reason, spend, actor, role)
            in rows.decode((Int64, String, String, String, String, Int64, String, String).self)
        {
            changes.append(TierHistoryEntry(
                changeId: id, changedAt: changedAt, fromTier: from, toTier: to, reason: reason, spendMinor: spend,
                actor: actor, actorRole: role))
        }
        let next = changes.count == Int(pageSize) ? changes.last?.changeId : nil
        return TierHistoryPage(changes: changes, nextCursor: next)
    }
}
