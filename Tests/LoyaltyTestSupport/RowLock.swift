import Logging
import PostgresNIO

/// Row locks held in an open transaction until `release()`: tests use them to keep writes waiting inside
/// PostgreSQL (a commit batch blocked on its members' rows) while they shut down, disconnect or kill something.
public final class RowLock: Sendable {
    private let holder: Task<Void, any Error>
    private let releaseSignal: AsyncStream<Void>.Continuation

    /// Returns once `query` (e.g. `SELECT … FOR UPDATE`) has taken its locks.
    public static func hold(_ client: PostgresClient, _ query: PostgresQuery) async throws -> RowLock {
        let (locked, lockedSignal) = AsyncStream<Void>.makeStream()
        let (release, releaseSignal) = AsyncStream<Void>.makeStream()
        let holder = Task {
            defer { lockedSignal.finish() }
            try await client.withTransaction(logger: TestServices.logger) { connection in
                _ = try await connection.query(query, logger: TestServices.logger)
                lockedSignal.yield()
                for await _ in release { break }
            }
        }
        var held = false
        for await _ in locked {
            held = true
            break
        }
        guard held else {
            try await holder.value  // the query failed: its error
            throw CancellationError()
        }
        return RowLock(holder: holder, releaseSignal: releaseSignal)
    }

    private init(holder: Task<Void, any Error>, releaseSignal: AsyncStream<Void>.Continuation) {
        self.holder = holder
        self.releaseSignal = releaseSignal
    }

    /// Ends the transaction; throws what the holding transaction threw, if anything.
    public func release() async throws {
        releaseSignal.yield()
        releaseSignal.finish()
        try await holder.value
    }
}

extension PostgresClient {
    /// Backends of the current database waiting on a lock (only those of `application` when given): tests poll it
    /// to know a statement is blocked where they meant it to be before they go on.
    public func backendsWaitingOnLocks(application: String? = nil) async throws -> Int64 {
        let rows = try await query("""
            SELECT count(*)::int8 FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'
              AND (\(application)::text IS NULL OR application_name = \(application)::text)
            """, logger: TestServices.logger)
        for try await count in rows.decode(Int64.self) { return count }
        return 0
    }
}
