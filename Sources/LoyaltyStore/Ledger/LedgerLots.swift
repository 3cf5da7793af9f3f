import Foundation
import LoyaltyCore
import PostgresNIO

/// A lot with something left: what an accrual, bonus or credit adjustment added, what of it redemptions and
/// expiry have not yet taken, and when it becomes spendable and expires.
public struct OpenLot: Sendable, Codable, Equatable {
    public var lotId: Int64
    public var unit: LedgerUnit
    /// `pending` (inside the return window) or `available`.
    public var state: String
    public var originalAmount: Int64
    public var remainingAmount: Int64
    /// The business time of the entry that made the lot (the purchase time for a checkout).
    public var earnedAt: String
    public var availableAt: String
    /// Nil: never expires.
    public var expiresAt: String?
    /// The journal entry that made the lot.
    public var entryId: Int64
    /// That entry's kind (`accrual`, `adjustment`, `campaign_bonus`).
    public var kind: String
}

public struct OpenLotPage: Sendable, Codable, Equatable {
    public var lots: [OpenLot]
    /// The lot id to pass as `after` for the next page; nil on the last.
    public var nextCursor: Int64?
}

extension LedgerStore {
    /// Upper bound on one page of lots.
    public static let maximumLotPageSize = 200

    /// Open lots (pending or available, something left) oldest first, optionally of one unit. `after` is the
    /// previous page's `nextCursor`. Reads the open-lots partial index (member, unit, expiry, lot).
    public func openLots(memberID: Int64, unit: LedgerUnit?, after cursor: Int64? = nil, limit: Int = 50) async throws(LedgerStoreError) -> OpenLotPage {
        let pageSize = Int64(min(max(limit, 1), Self.maximumLotPageSize))
        let lots: [OpenLot] = try await call(
            """
            SELECT coalesce(jsonb_agg(row ORDER BY (row->>'lot_id')::bigint), '[]'::jsonb)::text FROM (
                SELECT jsonb_build_object(
                    'lot_id', l.lot_id, 'unit', l.unit, 'state', l.state, 'original_amount', l.original_amount,
                    'remaining_amount', l.remaining_amount, 'entry_id', l.entry_id, 'kind', e.kind,
                    'earned_at', to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                    'available_at', to_char(l.available_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                    'expires_at', to_char(l.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) AS row
                FROM lots l JOIN journal_entries e ON e.entry_id = l.entry_id
                WHERE l.member_id = \(memberID) AND l.remaining_amount > 0 AND l.state IN ('pending', 'available')
                  AND (\(unit?.rawValue)::text IS NULL OR l.unit = \(unit?.rawValue)::text)
                  AND (\(cursor)::bigint IS NULL OR l.lot_id > \(cursor)::bigint)
                ORDER BY l.lot_id
                LIMIT \(pageSize)
            ) page
            """)
        let next = lots.count == Int(pageSize) ? lots.last?.lotId : nil
        return OpenLotPage(lots: lots, nextCursor: next)
    }
}
