import Hummingbird
import LoyaltyStore

/// `/v1/campaigns`: multiplier and bonus campaigns and their lifecycle.
///
///     draft ──schedule──▶ scheduled ──trigger (bonus)──▶ running ──(every member paid, or budget)──▶ finished
///       │                    │                              │
///       └───────cancel───────┴────────────cancel────────────┴──▶ cancelled
///
/// Every write is audited (`campaign.create`, `campaign.update`, `campaign.schedule`, `campaign.cancel`, `campaign.trigger`). A
/// scheduled multiplier campaign applies at checkout inside its window; a triggered bonus campaign is paid by
/// `CampaignRunner` in batches, which stop at the next batch once the campaign is cancelled.
enum CampaignRoutes {
    @Sendable static func create(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let input = try CampaignInput.campaign(from: try await JSONRequestBody.object(request))
        let audit = try context.auditContext()
        let store = services.campaigns(context)
        let campaign: AdminCampaign
        switch input {
        case .multiplier(let multiplier, let segmentID):
            campaign = try await store.createMultiplier(multiplier, segmentID: segmentID, audit: audit)
        case .bonus(let draft):
            campaign = try await store.createBonus(draft, audit: audit)
        }
        return try JSONResponse.make(
            campaign.representation, status: .created, headers: [.location: "/v1/campaigns/\(campaign.campaignID)"])
    }

    /// Newest first, optionally only those in `state`; `cursor` is the previous page's `next_cursor`.
    @Sendable static func list(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["state", "cursor", "limit"])
        let state = parameters.string("state")
        if let state, !CampaignAdminStore.states.contains(state) {
            throw APIProblem.invalidParameter(
                "query parameter \"state\" must be one of \(CampaignAdminStore.states.sorted().joined(separator: ", "))")
        }
        let (campaigns, next) = try await services.campaigns(context).campaigns(
            state: state, before: try parameters.cursor(), limit: try parameters.limit())
        return try JSONResponse.make(Page(items: campaigns.map(\.representation), nextCursor: next))
    }

    /// The campaign; a bonus campaign's `progress` says how far its run is (members, points, rate, ETA).
    @Sendable static func get(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let campaignID = try AdminRequestParameters(request, context).id()
        guard let campaign = try await services.campaigns(context).campaign(campaignID) else {
            throw APIProblem.notFound("campaign \(campaignID) not found")
        }
        return try JSONResponse.make(campaign.representation)
    }

    /// Changes a draft (409 once scheduled): the fields given replace the draft's, `null` clears, and the result
    /// is checked as a new campaign would be.
    @Sendable static func update(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let campaignID = try AdminRequestParameters(request, context).id()
        let patch = try await JSONRequestBody.object(request)
        let campaign = try await services.campaigns(context).updateDraft(campaignID, audit: try context.auditContext()) { draft in
            try CampaignInput.patched(draft, with: patch)
        }
        return try JSONResponse.make(campaign.representation)
    }

    @Sendable static func schedule(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        try await transition(.schedule, request, context, services)
    }

    @Sendable static func cancel(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        try await transition(.cancel, request, context, services)
    }

    /// Starts a scheduled bonus campaign's run; the runner pays the segment. 409 with the run's own code when it
    /// cannot start (`campaign_already_running`, `campaign_ended`, ...).
    @Sendable static func trigger(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let campaignID = try AdminRequestParameters(request, context).id()
        try await JSONRequestBody.object(request, required: false).allowOnly([])
        let campaign = try await services.campaigns(context).trigger(campaignID, audit: try context.auditContext())
        return try JSONResponse.make(campaign.representation, status: .accepted)
    }

    static func transition(
        _ transition: CampaignTransition, _ request: Request, _ context: AdminRequestContext, _ services: AdminServices
    ) async throws -> Response {
        let campaignID = try AdminRequestParameters(request, context).id()
        try await JSONRequestBody.object(request, required: false).allowOnly([])
        let campaign = try await services.campaigns(context).transition(campaignID, transition, audit: try context.auditContext())
        return try JSONResponse.make(campaign.representation)
    }
}
