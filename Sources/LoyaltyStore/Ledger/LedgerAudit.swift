import Foundation
import Logging
import PostgresNIO

/// `loyalty audit`: rebuilds balances from postings and checks every ledger invariant.
public struct LedgerAudit: Sendable {
    public struct Check: Sendable, Equatable {
        public var name: String
        public var violations: Int
        /// A few offending ids, to start looking.
        public var samples: [String]
    }

    public struct Report: Sendable, Equatable {
        public var checks: [Check]
        public var entries: Int
        public var postings: Int
        public var isClean: Bool { checks.allSatisfy { $0.violations == 0 } }
    }

    /// Each query returns one text column per violation (an id to look at). Names say the invariant.
    static let checks: [(name: String, sql: String)] = [
        ("every entry's postings sum to zero per unit", """
            SELECT p.entry_id::text || ' ' || a.unit FROM postings p JOIN accounts a USING (account_id)
            GROUP BY p.entry_id, a.unit HAVING sum(p.amount) <> 0
            """),
        ("all postings together sum to zero per unit", """
            SELECT a.unit FROM postings p JOIN accounts a USING (account_id) GROUP BY a.unit HAVING sum(p.amount) <> 0
            """),
        ("cached member balances equal the sum of their postings", """
            SELECT a.account_id::text FROM accounts a
            LEFT JOIN (SELECT account_id, sum(amount) AS total FROM postings GROUP BY account_id) p USING (account_id)
            WHERE a.member_id IS NOT NULL AND a.balance <> coalesce(p.total, 0)
            """),
        ("no member balance is negative", """
            SELECT account_id::text FROM accounts WHERE member_id IS NOT NULL AND balance < 0
            """),
        ("pending lots add up to the pending balance", """
            SELECT a.member_id::text || ' ' || a.unit FROM accounts a
            LEFT JOIN (SELECT member_id, unit, sum(remaining_amount) AS total FROM lots WHERE state = 'pending'
                       GROUP BY member_id, unit) l ON l.member_id = a.member_id AND l.unit = a.unit
            WHERE a.bucket = 'pending' AND a.balance <> coalesce(l.total, 0)
            """),
        ("available lots add up to available plus held", """
            SELECT av.member_id::text || ' ' || av.unit FROM accounts av
            JOIN accounts h ON h.member_id = av.member_id AND h.unit = av.unit AND h.bucket = 'held'
            LEFT JOIN (SELECT member_id, unit, sum(remaining_amount) AS total FROM lots WHERE state = 'available'
                       GROUP BY member_id, unit) l ON l.member_id = av.member_id AND l.unit = av.unit
            WHERE av.bucket = 'available' AND av.balance + h.balance <> coalesce(l.total, 0)
            """),
        ("active holds add up to the held balance", """
            SELECT a.member_id::text || ' ' || a.unit FROM accounts a
            LEFT JOIN (SELECT member_id, unit, sum(amount) AS total FROM holds WHERE state = 'active'
                       GROUP BY member_id, unit) h ON h.member_id = a.member_id AND h.unit = a.unit
            WHERE a.bucket = 'held' AND a.balance <> coalesce(h.total, 0)
            """),
        ("each original's reversed amount equals its reversals", """
            SELECT o.entry_id::text FROM journal_entries o
            LEFT JOIN (SELECT reverses_entry_id, sum(amount) AS total FROM journal_entries
                       WHERE kind = 'reversal' GROUP BY reverses_entry_id) r ON r.reverses_entry_id = o.entry_id
            WHERE o.kind IN ('accrual', 'redemption') AND o.reversed_amount <> coalesce(r.total, 0)
            """),
        ("no entry is claimed by two idempotency keys", """
            SELECT entry_id::text FROM idempotency_keys WHERE entry_id IS NOT NULL
            GROUP BY entry_id HAVING count(*) > 1
            """),
        ("lot remainders stay within 0 and the original", """
            SELECT lot_id::text FROM lots WHERE remaining_amount < 0 OR remaining_amount > original_amount
            """),
        // The references the checkout's hot inserts no longer guard with foreign keys (migration 0025).
        ("every posting's entry and account exist", """
            SELECT p.entry_id::text || ' ' || p.account_id::text FROM postings p
            WHERE NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.entry_id = p.entry_id)
               OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.account_id = p.account_id)
            """),
        ("every lot's entry and member exist", """
            SELECT l.lot_id::text FROM lots l
            WHERE NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.entry_id = l.entry_id)
               OR NOT EXISTS (SELECT 1 FROM members m WHERE m.member_id = l.member_id)
            """),
        ("every lot consumption's entry and lot exist", """
            SELECT c.entry_id::text || ' ' || c.seq::text FROM lot_consumptions c
            WHERE NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.entry_id = c.entry_id)
               OR NOT EXISTS (SELECT 1 FROM lots l WHERE l.lot_id = c.lot_id)
            """),
        ("every purchase record's member and entries exist", """
            SELECT c.terminal_id || ' ' || c.pos_transaction_id FROM pos_checkouts c
            WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.member_id = c.member_id)
               OR (c.accrual_entry_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.entry_id = c.accrual_entry_id))
               OR (c.redemption_entry_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.entry_id = c.redemption_entry_id))
            """),
        ("every idempotency key's entry exists", """
            SELECT k.entry_id::text FROM idempotency_keys k
            WHERE k.entry_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.entry_id = k.entry_id)
            """),
    ]

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func run(progress: @Sendable (String) -> Void = { _ in }) async throws -> Report {
        var results: [Check] = []
        // One snapshot for all checks, so a running server cannot make them disagree with each other.
        let (entries, postings) = try await client.withConnection { connection in
            try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
            do {
                var counts: (Int, Int) = (0, 0)
                let rows = try await connection.query(
                    "SELECT (SELECT count(*) FROM journal_entries)::int8, (SELECT count(*) FROM postings)::int8", logger: logger)
                for try await (e, p) in rows.decode((Int, Int).self) { counts = (e, p) }
                for (index, check) in Self.checks.enumerated() {
                    progress("[\(index + 1)/\(Self.checks.count)] \(check.name)")
                    let rows = try await connection.query(PostgresQuery(unsafeSQL: check.sql), logger: logger)
                    var violations = 0
                    var samples: [String] = []
                    for try await id in rows.decode(String.self) {
                        violations += 1
                        if samples.count < 5 { samples.append(id) }
                    }
                    results.append(Check(name: check.name, violations: violations, samples: samples))
                }
                try await connection.query("COMMIT", logger: logger)
                return counts
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
        return Report(checks: results, entries: entries, postings: postings)
    }
}
