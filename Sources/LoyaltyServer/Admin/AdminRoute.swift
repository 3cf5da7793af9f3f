import Hummingbird
import LoyaltyStore

typealias AdminHandler = @Sendable (Request, AdminRequestContext, AdminServices) async throws -> Response

/// One route of the admin API: method, path pattern (OpenAPI style, `{id}`), who may call it, and its handler.
/// `AdminRouteTable.routes` lists them all; the router is built from that list and a test compares it with
/// docs/openapi.json.
public struct AdminRoute: Sendable {
    public enum Access: Sendable, Equatable {
        /// No token needed (health, readiness, the API document).
        case anonymous
        /// A bearer token with one of these roles.
        case roles(Set<AdminRole>)
    }

    public let method: HTTPRequest.Method
    public let path: String
    public let access: Access
    let handler: AdminHandler

    init(_ method: HTTPRequest.Method, _ path: String, _ access: Access, _ handler: @escaping AdminHandler) {
        self.method = method
        self.path = path
        self.access = access
        self.handler = handler
    }

    /// Authenticates and authorizes (protected routes), then runs the handler. Authentication comes before the
    /// body is read, so an anonymous client cannot make the server read or parse anything.
    func respond(to request: Request, context: AdminRequestContext, services: AdminServices) async throws -> Response {
        var context = context
        if case .roles(let allowed) = access {
            let actor = try await services.authenticator.authenticate(request, logger: context.logger)
            context.logger[metadataKey: "token_id"] = "\(actor.tokenID)"
            try AdminAuthenticator.authorize(actor, allowed: allowed)
            context.actor = actor
        }
        return try await handler(request, context, services)
    }
}

extension Router where Context == AdminRequestContext {
    /// Registers every route of `routes` with `services`.
    func register(_ routes: [AdminRoute], services: AdminServices) {
        for route in routes {
            on(RouterPath(route.path), method: route.method) { request, context in
                try await route.respond(to: request, context: context, services: services)
            }
        }
    }
}
