import Foundation
import Logging
import NIOCore
import PostgresNIO

/// A stored admin token as authentication sees it. The secret itself is never stored.
public struct AdminTokenRecord: Sendable, Equatable {
    public var actor: AdminActor
    public var isRevoked: Bool
    /// Judged by PostgreSQL's clock, so every server agrees.
    public var isExpired: Bool
    /// True when `last_used_at` is unset or older than `AdminTokenStore.lastUsedResolutionSeconds`.
    public var isLastUseStale: Bool

    public init(actor: AdminActor, isRevoked: Bool, isExpired: Bool, isLastUseStale: Bool) {
        self.actor = actor
        self.isRevoked = isRevoked
        self.isExpired = isExpired
        self.isLastUseStale = isLastUseStale
    }
}

/// A token just created: its id and the secret to show once.
public struct CreatedAdminToken: Sendable {
    public var tokenID: Int64
    public var secret: AdminTokenSecret
    public var expiresAt: Date?
}

/// Admin tokens in PostgreSQL: create, revoke, find by hash, note use.
public struct AdminTokenStore: Sendable {
    /// `last_used_at` is written at most this often per token, so authentication is not a write per request.
    public static let lastUsedResolutionSeconds = 60
    public static let maximumNameLength = 100
    public static let maximumLifetimeDays = 3_650

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func create(name: String, role: AdminRole, expiresInDays: Int?) async throws -> CreatedAdminToken {
        guard (1...Self.maximumNameLength).contains(name.count) else {
            throw AdminStoreError.invalid(field: "name", reason: "must be 1-\(Self.maximumNameLength) characters")
        }
        if let days = expiresInDays, !(1...Self.maximumLifetimeDays).contains(days) {
            throw AdminStoreError.invalid(field: "expires-in-days", reason: "must be 1-\(Self.maximumLifetimeDays)")
        }
        let secret = AdminTokenSecret.generate()
        let days = expiresInDays.map(Int32.init)
        let rows = try await client.query(
            """
            INSERT INTO admin_tokens (name, role, token_hash, expires_at)
            VALUES (\(name), \(role.rawValue), \(ByteBuffer(bytes: secret.hash)),
                    now() + make_interval(days => \(days)::integer))
            RETURNING token_id, expires_at
            """, logger: logger)
        for try await (id, expiresAt) in rows.decode((Int64, Date?).self) {
            return CreatedAdminToken(tokenID: id, secret: secret, expiresAt: expiresAt)
        }
        throw AdminStoreError.notFound("the inserted token row")
    }

    /// Revokes at once: the token's next request is refused. False when no such token exists or it was
    /// already revoked.
    public func revoke(tokenID: Int64) async throws -> Bool {
        let rows = try await client.query(
            "UPDATE admin_tokens SET revoked_at = now() WHERE token_id = \(tokenID) AND revoked_at IS NULL RETURNING token_id",
            logger: logger)
        for try await _ in rows.decode(Int64.self) { return true }
        return false
    }

    public func find(hash: [UInt8]) async throws -> AdminTokenRecord? {
        let resolution = Int32(Self.lastUsedResolutionSeconds)
        let rows = try await client.query(
            """
            SELECT token_id, name, role, revoked_at IS NOT NULL, coalesce(expires_at <= now(), false),
                   last_used_at IS NULL OR last_used_at < now() - make_interval(secs => \(resolution)::integer)
            FROM admin_tokens WHERE token_hash = \(ByteBuffer(bytes: hash))
            """, logger: logger)
        for try await (id, name, role, revoked, expired, stale) in rows.decode((Int64, String, String, Bool, Bool, Bool).self) {
            guard let role = AdminRole(rawValue: role) else { return nil }
            return AdminTokenRecord(
                actor: AdminActor(tokenID: id, name: name, role: role), isRevoked: revoked, isExpired: expired,
                isLastUseStale: stale)
        }
        return nil
    }

    /// Notes a use. Conditional, so servers racing on the same token write once per resolution at most.
    public func noteUse(tokenID: Int64) async throws {
        let resolution = Int32(Self.lastUsedResolutionSeconds)
        try await client.query(
            """
            UPDATE admin_tokens SET last_used_at = now()
            WHERE token_id = \(tokenID)
              AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => \(resolution)::integer))
            """, logger: logger)
    }
}
