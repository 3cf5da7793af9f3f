import Foundation
import Hummingbird
import LoyaltyStore

/// `/v1/members`: create, read, search, update (If-Match), block, unblock, erase. Every write is audited in its
/// own transaction (see `AdminMemberStore`) and drops the till's cached copy of the member.
enum MemberRoutes {
    @Sendable static func create(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let profile = try MemberInput.profile(from: try await JSONRequestBody.object(request))
        let member = try await services.members(context).create(profile, audit: try context.auditContext())
        return try response(member, status: .created, location: true)
    }

    @Sendable static func get(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let memberID = try AdminRequestParameters(request, context).id()
        guard let member = try await services.members(context).find(memberID: memberID) else {
            throw APIProblem.notFound("member \(memberID) not found")
        }
        return try response(member)
    }

    /// Exactly one of `card`, `phone` (E.164; send `+` as `%2B`), `email` (case-insensitive); cursor-paged.
    @Sendable static func search(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["card", "phone", "email", "cursor", "limit"])
        let given = [
            parameters.string("card").map(MemberLookup.card), parameters.string("phone").map(MemberLookup.phone),
            parameters.string("email").map(MemberLookup.email),
        ].compactMap { $0 }
        guard given.count == 1, let lookup = given.first else {
            throw APIProblem.invalidParameter("give exactly one of the query parameters card, phone, email")
        }
        let (members, next) = try await services.members(context).search(
            lookup, after: try parameters.cursor(), limit: try parameters.limit())
        return JSONResponse.page(jsonItems: members.map(\.jsonText), nextCursor: next)
    }

    /// Partial update. `If-Match: <version>` (or `"<version>"`) makes it conditional: 409 when the member has
    /// changed since that version was read.
    @Sendable static func update(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let memberID = try AdminRequestParameters(request, context).id()
        let expectedVersion = try ifMatchVersion(request)
        let patch = try MemberInput.patch(from: try await JSONRequestBody.object(request))
        let audit = try context.auditContext()
        // The tier sets the earn rate, so moving a member by hand is an admin's decision, like the ladder itself;
        // support would otherwise sidestep its adjustment limit.
        if patch.tierCode != nil, audit.actor.role != .admin {
            throw APIProblem(
                .forbidden,
                "only an admin may set \"tier_code\"; the token's role is \(audit.actor.role.rawValue): leave the field out, or ask an admin")
        }
        let member = try await services.members(context).update(
            memberID: memberID, patch, expectedVersion: expectedVersion, audit: audit)
        await services.invalidateCachedMember(memberID, ledgerVersion: member.ledgerVersion, logger: context.logger)
        return try response(member)
    }

    @Sendable static func block(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        try await setBlocked(true, request, context, services)
    }

    @Sendable static func unblock(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        try await setBlocked(false, request, context, services)
    }

    /// Irreversible: personal data gone, member id and ledger kept. Repeating it answers the erased member again.
    @Sendable static func erase(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let memberID = try AdminRequestParameters(request, context).id()
        try await JSONRequestBody.object(request, required: false).allowOnly([])
        let erased = try await services.members(context).erase(memberID: memberID, audit: try context.auditContext())
        // Before answering: the cache drops the member and the index keys of its card and phone.
        await services.eraseCachedMember(
            memberID, ledgerVersion: erased.member.ledgerVersion, cardNumber: erased.cardNumber, phone: erased.phone,
            logger: context.logger)
        return try response(erased.member)
    }

    static func setBlocked(
        _ blocked: Bool, _ request: Request, _ context: AdminRequestContext, _ services: AdminServices
    ) async throws -> Response {
        let memberID = try AdminRequestParameters(request, context).id()
        try await JSONRequestBody.object(request, required: false).allowOnly([])
        let member = try await services.members(context).setBlocked(memberID: memberID, blocked, audit: try context.auditContext())
        await services.invalidateCachedMember(memberID, ledgerVersion: member.ledgerVersion, logger: context.logger)
        return try response(member)
    }

    /// The member as JSON with its version as ETag (and Location when created).
    static func response(_ member: AdminMember, status: HTTPResponse.Status = .ok, location: Bool = false) throws -> Response {
        var headers: HTTPFields = [.eTag: "\"\(member.version)\""]
        if location { headers[.location] = "/v1/members/\(member.memberID)" }
        return JSONResponse.raw(member.jsonText, status: status, headers: headers)
    }

    /// nil without If-Match or with `*`; otherwise the version, bare or as a quoted (strong or weak) entity tag.
    static func ifMatchVersion(_ request: Request) throws(APIProblem) -> Int64? {
        guard let raw = request.headers[.ifMatch]?.trimmingCharacters(in: .whitespaces), raw != "*" else { return nil }
        var text = Substring(raw)
        if text.hasPrefix("W/") { text = text.dropFirst(2) }
        if text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") { text = text.dropFirst().dropLast() }
        guard let version = Int64(text), version > 0 else {
            throw .invalidParameter("header If-Match must be a member version from a previous response, e.g. \"3\"")
        }
        return version
    }
}
