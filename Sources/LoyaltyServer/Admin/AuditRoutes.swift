import Hummingbird
import LoyaltyStore

/// `GET /v1/audit`: the audit log, newest first, optionally for one resource (`member:42`).
enum AuditRoutes {
    static let maximumResourceLength = 100

    @Sendable static func list(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["resource", "cursor", "limit"])
        let resource = parameters.string("resource")
        if let resource, resource.utf8.count > maximumResourceLength {
            throw APIProblem.invalidParameter("query parameter \"resource\" is at most \(maximumResourceLength) bytes")
        }
        let page = try await services.auditLog(context).page(
            resource: resource, before: try parameters.cursor(), limit: try parameters.limit())
        return try JSONResponse.make(Page(items: page.entries, nextCursor: page.nextCursor))
    }
}
