import Hummingbird
import LoyaltyStore

/// `/v1/segments`: saved member selections for campaigns. A definition is parsed by `SegmentDefinition.parse`
/// (unknown fields and bad values are 400 naming the field) and compiled to parameterised SQL. Creating and
/// refreshing are audited (`segment.create`, `segment.refresh`); preview saves nothing.
enum SegmentRoutes {
    @Sendable static func create(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let input = try CampaignInput.segment(from: try await JSONRequestBody.object(request))
        let segment = try await services.campaigns(context).createSegment(
            name: input.name, definition: input.definition, audit: try context.auditContext())
        return try JSONResponse.make(
            segment.representation, status: .created, headers: [.location: "/v1/segments/\(segment.segmentID)"])
    }

    /// Newest first; `cursor` is the previous page's `next_cursor`.
    @Sendable static func list(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["cursor", "limit"])
        let (segments, next) = try await services.campaigns(context).segments(
            before: try parameters.cursor(), limit: try parameters.limit())
        return try JSONResponse.make(Page(items: segments.map(\.representation), nextCursor: next))
    }

    @Sendable static func get(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let segmentID = try AdminRequestParameters(request, context).id()
        guard let segment = try await services.campaigns(context).segment(segmentID) else {
            throw APIProblem.notFound("segment \(segmentID) not found")
        }
        return try JSONResponse.make(segment.representation)
    }

    /// How many active members a definition selects now; nothing is saved.
    @Sendable static func preview(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let definition = try CampaignInput.preview(from: try await JSONRequestBody.object(request))
        let count = try await services.campaignRuns(context).previewCount(definition)
        return try JSONResponse.make(PreviewBody(memberCount: count))
    }

    /// Replaces the members with who matches the definition now (409 while a bonus run pays the segment).
    @Sendable static func refresh(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let segmentID = try AdminRequestParameters(request, context).id()
        try await JSONRequestBody.object(request, required: false).allowOnly([])
        let segment = try await services.campaigns(context).refreshSegment(segmentID, audit: try context.auditContext())
        return try JSONResponse.make(segment.representation)
    }
}

struct PreviewBody: Encodable, Sendable {
    var memberCount: Int64

    enum CodingKeys: String, CodingKey {
        case memberCount = "member_count"
    }
}
