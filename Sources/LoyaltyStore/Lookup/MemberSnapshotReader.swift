import Foundation
import Logging
import PostgresPipeline

/// The till's member lookups in PostgreSQL, for when the Redis cache cannot answer (a miss, or Redis down).
///
/// Guarantees: each lookup is one named prepared statement (prepared once per connection, in the same round trip
/// as its first execution), so one round trip; on connections of its own (libpq pipeline mode, many lookups in
/// flight on each), so lookups never queue behind checkout writes, pricing reads, admin requests or jobs on the
/// shared postgres-nio pool. A lookup whose deadline passes before it is sent is not sent and fails with
/// `deadlineExceeded` (the pipeline's timer fails it while it waits, so the till gets its answer by the deadline).
public final class MemberSnapshotReader: Sendable {
    /// The failures a lookup can end with.
    public enum Failure: Error, Sendable, Equatable {
        /// The lookup's deadline passed before it was sent.
        case deadlineExceeded
        /// PostgreSQL could not be reached, or answered with an error.
        case unavailable(String)
    }

    /// Bounds for `connect`: a lookup is one short indexed read, so a couple of pipelined connections suffice.
    public static let connectionCountRange = 1...16

    let pool: PipelinePool

    public init(pool: PipelinePool) {
        self.pool = pool
    }

    /// Opens `connections` pipeline connections named `loyalty-lookup` in `pg_stat_activity`.
    public static func connect(url: DatabaseURL, connections: Int, connectTimeoutMs: Int = 5_000, logger: Logger) async throws
        -> MemberSnapshotReader
    {
        precondition(connectionCountRange.contains(connections), "lookup connections must be in \(connectionCountRange)")
        var configuration = PipelineConfiguration(
            conninfo: url.conninfo(connectTimeoutMs: connectTimeoutMs, applicationName: "loyalty-lookup"), logger: logger)
        configuration.connectTimeout = .milliseconds(connectTimeoutMs)
        // Lookups waiting beyond this many per connection are refused at once instead of piling up.
        configuration.maxQueued = 1_024
        return MemberSnapshotReader(pool: try await PipelinePool.connect(configuration, size: connections))
    }

    public func close() async { await pool.close(drain: true) }

    /// One statement per identifier kind; the name always stands for the same SQL text.
    static func statement(_ identifier: MemberIdentifier) -> (name: String, sql: String, parameter: String) {
        switch identifier {
        case .memberID(let id):
            ("lookup_member_by_id", "SELECT pos_member_snapshot(member_id)::text FROM members WHERE member_id = $1::int8", String(id))
        case .card(let card):
            ("lookup_member_by_card", "SELECT pos_member_snapshot(member_id)::text FROM members WHERE card_number = $1::text", card)
        case .phone(let phone):
            ("lookup_member_by_phone", "SELECT pos_member_snapshot(member_id)::text FROM members WHERE phone = $1::text", phone)
        }
    }

    /// The member's snapshot in the cache's JSON form (with its pricing facts). Nil: no such member.
    public func snapshot(_ identifier: MemberIdentifier, deadline: ContinuousClock.Instant?) async throws(Failure) -> Data? {
        let (name, sql, parameter) = Self.statement(identifier)
        let result: PipelineResult
        do {
            result = try await pool.execute(.prepared(name, sql, [parameter], deadline: deadline))
        } catch PipelineError.deadlineExceeded {
            throw .deadlineExceeded
        } catch {
            throw .unavailable("\(error)")
        }
        return result.rows.first?.first.flatMap { $0 }.map { Data($0.utf8) }
    }
}
