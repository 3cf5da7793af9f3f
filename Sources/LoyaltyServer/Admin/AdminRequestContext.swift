import Hummingbird
import Logging
import LoyaltyStore

/// The per-request context of the admin API: the request id (in every log line's metadata) and, on protected
/// routes, the token that authenticated.
struct AdminRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Set by `RequestIDMiddleware` before anything else runs.
    var requestID: String = ""
    /// Set on protected routes once the token is authenticated and its role allowed.
    var actor: AdminActor?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    /// Hummingbird's own decoding limit, kept equal to the one `JSONRequestBody` enforces.
    var maxUploadSize: Int { JSONRequestBody.maximumBytes }

    /// The authenticated actor and request id for an audited write. Only protected routes have an actor.
    func auditContext() throws -> AuditContext {
        guard let actor else { throw AdminInternalError("a protected handler ran without an actor") }
        return AuditContext(actor: actor, requestID: requestID)
    }
}

/// A bug on the server's side; the client sees only `internal` and the request id.
struct AdminInternalError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
