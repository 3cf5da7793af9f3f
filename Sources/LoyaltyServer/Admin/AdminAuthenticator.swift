import Hummingbird
import Logging
import LoyaltyStore
import PostgresNIO

/// Bearer-token authentication for the admin API.
///
/// Guarantees: only a well-formed, known, unrevoked, unexpired token passes (401 `unauthenticated` with a
/// `WWW-Authenticate: Bearer` header otherwise); tokens are looked up by their SHA-256, never compared as text;
/// `last_used_at` is written at most once per `AdminTokenStore.lastUsedResolutionSeconds` per token. An accepted
/// token is remembered for `AdminTokenCache.timeToLive` (1 s): revocation and expiry take effect within that.
struct AdminAuthenticator: Sendable {
    static let realm = "loyalty-admin"

    let postgres: PostgresClient
    let tokens: AdminTokenCache

    func authenticate(_ request: Request, logger: Logger) async throws -> AdminActor {
        let values = request.headers[values: .authorization]
        guard let header = values.first else {
            throw Self.refusal("send Authorization: Bearer <token>", invalidToken: false)
        }
        guard values.count == 1 else { throw Self.refusal("send exactly one Authorization header", invalidToken: true) }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw Self.refusal("the Authorization header must be \"Bearer <token>\"", invalidToken: true)
        }
        guard let secret = AdminTokenSecret(parsing: parts[1].trimmingCharacters(in: .whitespaces)) else {
            throw Self.refusal("the bearer token is malformed", invalidToken: true)
        }
        let hash = secret.hash
        if let record = tokens.record(hash: hash) { return record.actor }
        let store = AdminTokenStore(client: postgres, logger: logger)
        guard let record = try await store.find(hash: hash) else {
            throw Self.refusal("the bearer token is not known", invalidToken: true)
        }
        guard !record.isRevoked else { throw Self.refusal("the bearer token was revoked", invalidToken: true) }
        guard !record.isExpired else { throw Self.refusal("the bearer token has expired", invalidToken: true) }
        if record.isLastUseStale {
            // Bookkeeping only: a failure here must not refuse an authenticated request.
            do { try await store.noteUse(tokenID: record.actor.tokenID) } catch {
                logger.warning("could not note token use", metadata: ["token_id": "\(record.actor.tokenID)", "error": "\(error)"])
            }
        }
        tokens.keep(record, hash: hash)
        return record.actor
    }

    /// 403 unless `actor`'s role is one of `allowed`; the message names the roles that are.
    static func authorize(_ actor: AdminActor, allowed: Set<AdminRole>) throws(APIProblem) {
        guard allowed.contains(actor.role) else {
            let names = allowed.sorted().map(\.rawValue).joined(separator: ", ")
            throw APIProblem(.forbidden, "this needs one of the roles \(names); the token's role is \(actor.role.rawValue)")
        }
    }

    static func refusal(_ detail: String, invalidToken: Bool) -> APIProblem {
        // RFC 6750: a challenge always; error="invalid_token" when a token was sent but is not acceptable.
        let challenge = invalidToken ? "Bearer realm=\"\(realm)\", error=\"invalid_token\"" : "Bearer realm=\"\(realm)\""
        return APIProblem(.unauthenticated, detail, headers: [.wwwAuthenticate: challenge])
    }
}
