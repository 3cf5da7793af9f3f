import Logging
import PostgresNIO

extension PostgresConnection {
    /// `withTransaction`, but a failure inside the closure surfaces as the closure's own error (postgres-nio wraps
    /// it in `PostgresTransactionError`, which hides typed errors such as `TierError` or `StoreError`).
    func transaction<Result>(
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        do {
            return try await withTransaction(logger: logger, isolation: isolation, body)
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error.commitError ?? error.beginError ?? error
        }
    }
}

extension PostgresClient {
    /// A pooled connection's `transaction`: the same unwrapping of the closure's own error.
    func transaction<Result>(
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await withConnection(isolation: isolation) { connection in
            try await connection.transaction(logger: logger, isolation: isolation, body)
        }
    }
}
