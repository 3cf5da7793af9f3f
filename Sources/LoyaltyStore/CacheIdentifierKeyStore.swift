import Logging
import PostgresNIO

/// The secret that keys the member cache's identifier digests (migration 0012): one per database, so every server
/// on it puts and finds the same Redis keys.
public struct CacheIdentifierKeyStore: Sendable {
    public struct Missing: Error, CustomStringConvertible {
        public var description: String {
            "the database has no cache identifier key (table cache_identifier_key): run `loyalty migrate`"
        }
    }

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The key's 32 bytes.
    public func load() async throws -> [UInt8] {
        let rows = try await client.query("SELECT key_bytes FROM cache_identifier_key", logger: logger)
        for try await bytes in rows.decode(ByteBuffer.self) {
            let key = Array(buffer: bytes)
            guard key.count == 32 else { break }
            return key
        }
        throw Missing()
    }
}
