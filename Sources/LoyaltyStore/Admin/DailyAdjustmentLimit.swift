import LoyaltyCore
import Logging
import PostgresNIO

/// A cap on what one token may adjust per UTC day, per unit: the sum of |delta| of its adjustments recorded since
/// the day began. Counted from the journal (the ledger of record), so nothing else has to be kept in step.
public struct DailyAdjustmentLimit: Sendable, Equatable {
    /// Most |delta| summed per unit and UTC day, in the adjustment's unit.
    public var limit: Int64

    public init(limit: Int64) {
        precondition(limit >= 0, "a limit is not negative")
        self.limit = limit
    }

    /// Serialises the adjustments of one actor for the rest of the transaction, so two at once cannot each see
    /// room for themselves and together pass the limit. Taken before the member lock, always in that order.
    static func lock(actor: String, on connection: PostgresConnection, logger: Logger) async throws {
        _ = try await connection.query(
            "SELECT pg_advisory_xact_lock(hashtextextended(\("daily_adjustment:" + actor), 0))", logger: logger)
    }

    /// The actor's usage today in `unit`, including adjustments of this transaction, with the next UTC midnight.
    static func usage(actor: String, unit: LedgerUnit, on connection: PostgresConnection, logger: Logger) async throws -> (used: Int64, resetsAt: String) {
        let rows = try await connection.query(
            """
            WITH day AS (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AS start)
            SELECT coalesce((
                    SELECT sum(e.amount) FROM journal_entries e
                    WHERE e.kind = 'adjustment' AND e.actor = \(actor) AND e.unit = \(unit.rawValue)
                      AND e.recorded_at >= (SELECT start FROM day) AT TIME ZONE 'UTC'), 0)::int8,
                to_char((SELECT start FROM day) + interval '1 day', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
            """, logger: logger)
        for try await row in rows.decode((Int64, String).self) { return row }
        return (0, "")
    }
}

/// What a refused adjustment would have made of the day's usage.
public struct DailyAdjustmentUsage: Sendable, Equatable {
    public var unit: LedgerUnit
    public var limit: Int64
    /// |delta| summed over the token's adjustments today before this one.
    public var usedBefore: Int64
    /// |delta| of the refused adjustment.
    public var requested: Int64
    /// The next UTC midnight (RFC 3339), when the count starts again.
    public var resetsAt: String

    public init(unit: LedgerUnit, limit: Int64, usedBefore: Int64, requested: Int64, resetsAt: String) {
        self.unit = unit
        self.limit = limit
        self.usedBefore = usedBefore
        self.requested = requested
        self.resetsAt = resetsAt
    }
}
