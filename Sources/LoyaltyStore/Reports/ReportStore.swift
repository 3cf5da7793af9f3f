import Logging
import PostgresNIO

/// Program-wide reports over the ledger. Every query runs in a read-only transaction with a statement timeout,
/// so a report can neither change anything nor hold a pooled connection for long; every value is bound.
public struct ReportStore: Sendable {
    /// `expiring` looks at most this many days ahead.
    public static let expiringDays = 1...365
    /// `daily` covers at most this many days.
    public static let maximumDailyRangeDays = 366
    /// Longest a report query may run before PostgreSQL cancels it, by default.
    public static let statementTimeoutMs = 30_000

    let client: PostgresClient
    let logger: Logger
    /// This store's statement timeout (`statementTimeoutMs` unless the server is configured otherwise).
    let timeoutMs: Int

    public init(client: PostgresClient, logger: Logger, statementTimeoutMs: Int = ReportStore.statementTimeoutMs) {
        precondition(statementTimeoutMs > 0, "a report needs a time limit")
        self.client = client
        self.logger = logger
        self.timeoutMs = statementTimeoutMs
    }

    /// Available, pending and held balances summed per tier (the members' current tier) and unit; every tier and
    /// unit appears, with zeros when nothing is outstanding. Erased members' balances count: the ledger keeps them.
    public func liability() async throws -> [LiabilityRow] {
        try await readOnly { connection, logger in
            let rows = try await connection.query(
                """
                WITH balances AS (
                    SELECT m.tier_id, a.unit,
                        sum(a.balance) FILTER (WHERE a.bucket = 'available') AS available,
                        sum(a.balance) FILTER (WHERE a.bucket = 'pending') AS pending,
                        sum(a.balance) FILTER (WHERE a.bucket = 'held') AS held,
                        count(DISTINCT a.member_id) AS members
                    FROM accounts a JOIN members m ON m.member_id = a.member_id
                    WHERE a.member_id IS NOT NULL AND a.balance <> 0
                    GROUP BY m.tier_id, a.unit)
                SELECT t.code, t.rank, u.unit, coalesce(b.available, 0)::int8, coalesce(b.pending, 0)::int8,
                       coalesce(b.held, 0)::int8, coalesce(b.members, 0)::int8
                FROM tiers t CROSS JOIN unnest(ARRAY['points', 'cashback_minor']) AS u(unit)
                LEFT JOIN balances b ON b.tier_id = t.tier_id AND b.unit = u.unit
                ORDER BY t.rank, u.unit
                """, logger: logger)
            var result: [LiabilityRow] = []
            for try await (code, rank, unit, available, pending, held, members)
                in rows.decode((String, Int, String, Int64, Int64, Int64, Int64).self)
            {
                result.append(LiabilityRow(tierCode: code, tierRank: rank, unit: unit, available: available,
                                           pending: pending, held: held, members: members))
            }
            return result
        }
    }

    /// Lots (available, or pending and due to become available first) with something left that expire within
    /// the next `days` days, per UTC day and unit; only days with something due appear.
    public func expiring(days: Int, unit: String?) async throws -> [ExpiringDay] {
        precondition(Self.expiringDays.contains(days), "days out of range")
        return try await readOnly { connection, logger in
            // Two parts so each uses its partial index (lots_expiry_due_idx, lots_pending_due_idx).
            let rows = try await connection.query(
                """
                WITH due AS (
                    SELECT l.member_id, l.unit, l.remaining_amount, l.expires_at FROM lots l
                    WHERE l.state = 'available' AND l.remaining_amount > 0
                      AND l.expires_at > now() AND l.expires_at <= now() + make_interval(days => \(Int32(days)))
                    UNION ALL
                    SELECT l.member_id, l.unit, l.remaining_amount, l.expires_at FROM lots l
                    WHERE l.state = 'pending' AND l.available_at < now() + make_interval(days => \(Int32(days)))
                      AND l.remaining_amount > 0
                      AND l.expires_at > now() AND l.expires_at <= now() + make_interval(days => \(Int32(days))))
                SELECT to_char((expires_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD'), unit, sum(remaining_amount)::int8,
                       count(*)::int8, count(DISTINCT member_id)::int8
                FROM due WHERE (\(unit)::text IS NULL OR unit = \(unit)::text)
                GROUP BY 1, 2 ORDER BY 1, 2
                """, logger: logger)
            var result: [ExpiringDay] = []
            for try await (date, unit, amount, lots, members) in rows.decode((String, String, Int64, Int64, Int64).self) {
                result.append(ExpiringDay(date: date, unit: unit, amount: amount, lots: lots, members: members))
            }
            return result
        }
    }

    /// Accruals and redemptions per UTC day (by occurred_at) from `from` to `to` inclusive (`YYYY-MM-DD`), every
    /// day and unit listed, zeros included. Reversals are not netted out.
    public func daily(from: String, to: String, unit: String?) async throws -> [DailyTotals] {
        try await readOnly { connection, logger in
            let rows = try await connection.query(
                """
                WITH booked AS (
                    SELECT (e.occurred_at AT TIME ZONE 'UTC')::date AS day, e.unit,
                        sum(e.amount) FILTER (WHERE e.kind = 'accrual') AS accrued,
                        -- A paid purchase that earned nothing has an accrual of 0: not counted as one.
                        count(*) FILTER (WHERE e.kind = 'accrual' AND e.amount > 0) AS accruals,
                        sum(e.amount) FILTER (WHERE e.kind = 'redemption') AS redeemed,
                        count(*) FILTER (WHERE e.kind = 'redemption') AS redemptions
                    FROM journal_entries e
                    WHERE e.occurred_at >= (\(from)::date)::timestamp AT TIME ZONE 'UTC'
                      AND e.occurred_at < (\(to)::date + 1)::timestamp AT TIME ZONE 'UTC'
                      AND e.kind IN ('accrual', 'redemption')
                    GROUP BY 1, 2)
                SELECT to_char(d.day, 'YYYY-MM-DD'), u.unit, coalesce(b.accrued, 0)::int8, coalesce(b.accruals, 0)::int8,
                       coalesce(b.redeemed, 0)::int8, coalesce(b.redemptions, 0)::int8
                FROM generate_series(\(from)::date, \(to)::date, interval '1 day') AS d(day)
                CROSS JOIN unnest(ARRAY['points', 'cashback_minor']) AS u(unit)
                LEFT JOIN booked b ON b.day = d.day::date AND b.unit = u.unit
                WHERE (\(unit)::text IS NULL OR u.unit = \(unit)::text)
                ORDER BY 1, 2
                """, logger: logger)
            var result: [DailyTotals] = []
            for try await (date, unit, accrued, accruals, redeemed, redemptions)
                in rows.decode((String, String, Int64, Int64, Int64, Int64).self)
            {
                result.append(DailyTotals(date: date, unit: unit, accrued: accrued, accruals: accruals,
                                          redeemed: redeemed, redemptions: redemptions))
            }
            return result
        }
    }

    private func readOnly<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> Result
    ) async throws -> Result {
        let logger = self.logger
        let timeoutMs = self.timeoutMs
        do {
            return try await client.transaction(logger: logger) { connection in
                try await connection.query("SET TRANSACTION READ ONLY", logger: logger)
                try await connection.query(
                    PostgresQuery(unsafeSQL: "SET LOCAL statement_timeout = \(timeoutMs)"), logger: logger)
                return try await body(connection, logger)
            }
        } catch let error where PostgresErrorText.sqlState(error) == ReportTimedOut.queryCanceled {
            // The statement timeout fired (or the query was cancelled): the database is busy, not the server broken.
            throw ReportTimedOut(timeoutMs: timeoutMs)
        }
    }
}

/// A report query PostgreSQL cancelled at its statement timeout (SQLSTATE 57014): nothing is wrong with the
/// request, the database was too busy (or the data too large) to answer in time. Worth retrying later.
public struct ReportTimedOut: Error, Equatable, CustomStringConvertible {
    static let queryCanceled = "57014"

    public var timeoutMs: Int

    public var description: String {
        "the report did not finish within its \(timeoutMs) ms statement timeout and was cancelled"
    }
}
