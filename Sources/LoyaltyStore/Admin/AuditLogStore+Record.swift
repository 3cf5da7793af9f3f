import Logging
import PostgresNIO

extension AuditLogStore {
    /// Writes one audit row on its own, for a change that lives outside PostgreSQL (a rules reload changes the
    /// server's memory): the row follows the change, so a failure here is the caller's to report.
    public func record(_ record: AuditRecord, context: AuditContext) async throws {
        let logger = self.logger
        try await client.withConnection { connection in
            try await Self.write(record, context: context, on: connection, logger: logger)
        }
    }
}
