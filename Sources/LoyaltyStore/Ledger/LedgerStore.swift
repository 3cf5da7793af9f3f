import Foundation
import Logging
import LoyaltyCore
import NIOCore
import PostgresNIO

/// The ledger in PostgreSQL. Every write is one call to a ledger SQL function: one round trip, one transaction,
/// idempotent on its key, all-or-nothing. The functions (migrations 0002, 0003) hold the locking argument.
///
/// Who calls what: the server's admin path uses the audited adjustment (`adjust(_:key:audit:dailyLimit:)`), the jobs
/// `runJobBatch`; `accrue`, `hold`, `release`, `redeem`, `reverse` and the plain `adjust` are the general ledger
/// operations that the `loyalty bench` command and the tests (the SQL-against-model oracle among them) drive. The till never calls
/// them: its writes go through the `CheckoutLedger` seam (`CheckoutWriter`).
public struct LedgerStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func accrue(_ request: AccrualRequest, key: IdempotencyKey) async throws(LedgerStoreError) -> LedgerReceipt {
        let hash = ByteBuffer(bytes: requestHash("accrue", request))
        return try await call(
            """
            SELECT ledger_accrue(\(key.scope), \(key.key), \(hash), \(request.memberID), \(request.unit.rawValue),
                \(request.amount), \(request.availableAt), \(request.expiresAt)::timestamptz, \(request.occurredAt), \(request.actor),
                \(request.rulesVersion)::text, \(request.explanationJSON)::jsonb, \(request.spendMinor))::text
            """)
    }

    public func hold(_ request: HoldRequest, key: IdempotencyKey) async throws(LedgerStoreError) -> LedgerReceipt {
        let hash = ByteBuffer(bytes: requestHash("hold", request))
        return try await call(
            """
            SELECT ledger_hold(\(key.scope), \(key.key), \(hash), \(request.memberID), \(request.unit.rawValue),
                \(request.amount), \(request.expiresAt), \(request.actor))::text
            """)
    }

    public func release(holdID: Int64, actor: String, key: IdempotencyKey) async throws(LedgerStoreError) -> LedgerReceipt {
        let hash = ByteBuffer(bytes: requestHash("release", ["hold": "\(holdID)", "actor": actor]))
        return try await call(
            """
            SELECT ledger_release(\(key.scope), \(key.key), \(hash), \(holdID), \(actor), 'released')::text
            """)
    }

    public func redeem(_ request: RedemptionRequest, key: IdempotencyKey) async throws(LedgerStoreError) -> LedgerReceipt {
        let hash = ByteBuffer(bytes: requestHash("redeem", request))
        return try await call(
            """
            SELECT ledger_redeem(\(key.scope), \(key.key), \(hash), \(request.memberID), \(request.unit.rawValue),
                \(request.amount), \(request.holdID)::bigint, \(request.occurredAt), \(request.actor),
                \(request.explanationJSON)::jsonb)::text
            """)
    }

    public func reverse(_ request: ReversalRequest, key: IdempotencyKey) async throws(LedgerStoreError) -> LedgerReceipt {
        let hash = ByteBuffer(bytes: requestHash("reverse", request))
        return try await call(
            """
            SELECT ledger_reverse(\(key.scope), \(key.key), \(hash), \(request.originalEntryID), \(request.amount),
                \(request.occurredAt), \(request.actor), \(request.explanationJSON)::jsonb,
                \(request.refundedSpendMinor))::text
            """)
    }

    public func adjust(_ request: AdjustmentRequest, key: IdempotencyKey) async throws(LedgerStoreError) -> LedgerReceipt {
        let hash = ByteBuffer(bytes: requestHash("adjust", request))
        return try await call(
            """
            SELECT ledger_adjust(\(key.scope), \(key.key), \(hash), \(request.memberID), \(request.unit.rawValue),
                \(request.delta), \(request.reason), \(request.actor),
                coalesce(\(request.expiresAt)::timestamptz, now() + make_interval(days => \(request.expiresAfterDays)::int4)))::text
            """)
    }

    /// Runs one batch of a job (`activate`, `expire`, `expireHolds`), at most `batchSize` members or holds.
    public func runJobBatch(_ job: LedgerJob, batchSize: Int) async throws(LedgerStoreError) -> JobBatchResult {
        precondition(batchSize > 0 && batchSize <= 10_000, "job batches are bounded")
        let batch = Int32(batchSize)
        let query: PostgresQuery =
            switch job {
            case .activatePending: "SELECT ledger_activate_due(\(batch))::text"
            case .expireLots: "SELECT ledger_expire_due(\(batch))::text"
            case .expireHolds: "SELECT ledger_expire_holds(\(batch))::text"
            }
        return try await call(query)
    }

    /// The newest journal entry id, read before a job batch so `membersChanged` can say whom the batch touched.
    public func newestEntryID() async throws -> Int64 {
        let rows = try await client.query("SELECT coalesce(max(entry_id), 0) FROM journal_entries", logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        return 0
    }

    /// Members with entries by `job` after `entryID`, with their ledger versions now (for the member cache). A
    /// concurrent batch of the same job on another server may add members: refreshing those too costs a miss.
    public func membersChanged(by job: LedgerJob, after entryID: Int64, limit: Int = 10_000) async throws -> [(memberID: Int64, ledgerVersion: Int64)] {
        let rows = try await client.query(
            """
            SELECT m.member_id, m.ledger_version FROM members m
            WHERE m.member_id IN (SELECT e.member_id FROM journal_entries e WHERE e.entry_id > \(entryID) AND e.actor = \(job.actor))
            ORDER BY m.member_id LIMIT \(Int64(limit))
            """, logger: logger)
        var members: [(memberID: Int64, ledgerVersion: Int64)] = []
        for try await (id, version) in rows.decode((Int64, Int64).self) { members.append((id, version)) }
        return members
    }

    public func balances(memberID: Int64, unit: LedgerUnit) async throws(LedgerStoreError) -> MemberBalances {
        try await call("SELECT ledger_balances(\(memberID), \(unit.rawValue))::text")
    }

    /// Both units' balances in one round trip, or nil when there is no such member (the admin read: one query
    /// instead of a member read and two balance calls).
    public func currentBalances(memberID: Int64) async throws(LedgerStoreError) -> (points: MemberBalances, cashbackMinor: MemberBalances)? {
        do {
            let rows = try await client.query(
                """
                SELECT (p ->> 'available')::int8, (p ->> 'pending')::int8, (p ->> 'held')::int8,
                       (c ->> 'available')::int8, (c ->> 'pending')::int8, (c ->> 'held')::int8
                FROM members m, ledger_balances(m.member_id, 'points') p, ledger_balances(m.member_id, 'cashback_minor') c
                WHERE m.member_id = \(memberID)
                """, logger: logger)
            for try await (pa, pp, ph, ca, cp, ch) in rows.decode((Int64, Int64, Int64, Int64, Int64, Int64).self) {
                return (MemberBalances(available: pa, pending: pp, held: ph), MemberBalances(available: ca, pending: cp, held: ch))
            }
            return nil
        } catch {
            throw LedgerStoreError.from(error)
        }
    }

    /// Balances as they were at `instant`, rebuilt from postings (the cached balances only know the present).
    public func balances(memberID: Int64, unit: LedgerUnit, asOf instant: Date) async throws(LedgerStoreError) -> MemberBalances {
        try await call(
            """
            SELECT jsonb_build_object(
                'available', coalesce(sum(p.amount) FILTER (WHERE a.bucket = 'available'), 0),
                'pending', coalesce(sum(p.amount) FILTER (WHERE a.bucket = 'pending'), 0),
                'held', coalesce(sum(p.amount) FILTER (WHERE a.bucket = 'held'), 0))::text
            FROM accounts a
            JOIN postings p ON p.account_id = a.account_id
            JOIN journal_entries e ON e.entry_id = p.entry_id
            WHERE a.member_id = \(memberID) AND a.unit = \(unit.rawValue) AND e.recorded_at <= \(instant)
            """)
    }

    func call<Result: Decodable>(_ query: PostgresQuery) async throws(LedgerStoreError) -> Result {
        let text = try await callText(query)
        do {
            return try LedgerJSON.decoder.decode(Result.self, from: Data(text.utf8))
        } catch {
            // Not a database problem: the function answered something this build does not understand.
            throw .invariantViolated("unexpected ledger reply (\(error)); are the migrations current?")
        }
    }

    /// The one text column of the one row a ledger function returns.
    func callText(_ query: PostgresQuery) async throws(LedgerStoreError) -> String {
        do {
            let rows = try await client.query(query, logger: logger)
            for try await text in rows.decode(String.self) { return text }
        } catch {
            throw LedgerStoreError.from(error)
        }
        throw .invariantViolated("a ledger function returned no row")
    }
}

public enum LedgerJob: String, Sendable, CaseIterable {
    case activatePending = "activate-pending"
    case expireLots = "expire-lots"
    case expireHolds = "expire-holds"

    /// The actor its journal entries carry (set by the SQL job functions).
    public var actor: String {
        switch self {
        case .activatePending: "job:activation"
        case .expireLots: "job:expiry"
        case .expireHolds: "job:hold-expiry"
        }
    }
}

enum LedgerJSON {
    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()
}
