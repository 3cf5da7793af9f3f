import Hummingbird
import LoyaltyStore

/// `/v1/tiers`: the tier ladder. Everyone reads it; only admins change it (`tier.create`, `tier.update`,
/// `tier.delete`, audited). Every change is checked against the whole ladder: ranks unique, the lowest tier needs
/// no spend, thresholds rise with rank; a tier members are in (or were, per their tier history) cannot be deleted.
enum TierRoutes {
    @Sendable static func list(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let tiers = try await services.tiers(context).list()
        return try JSONResponse.make(TierList(items: tiers.map(TierBody.init)))
    }

    @Sendable static func get(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let code = try TierInput.code(context)
        guard let tier = try await services.tiers(context).tier(code: code) else { throw TierChangeError.unknown(code: code) }
        return try JSONResponse.make(TierBody(tier))
    }

    @Sendable static func create(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let tier = try TierInput.tier(from: try await JSONRequestBody.object(request))
        let saved = try await services.tiers(context).create(tier, audit: try context.auditContext())
        return try JSONResponse.make(TierBody(saved), status: .created, headers: [.location: "/v1/tiers/\(saved.code)"])
    }

    /// Partial update: the fields given replace the tier's; the result is checked as a new tier would be.
    @Sendable static func update(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let code = try TierInput.code(context)
        let body = try await JSONRequestBody.object(request)
        let saved = try await services.tiers(context).update(code: code, audit: try context.auditContext()) { tier in
            try TierInput.patched(tier, with: body)
        }
        return try JSONResponse.make(TierBody(saved))
    }

    @Sendable static func delete(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let code = try TierInput.code(context)
        try await JSONRequestBody.object(request, required: false).allowOnly([])
        _ = try await services.tiers(context).delete(code: code, audit: try context.auditContext())
        return Response(status: .noContent)
    }

    /// Each refusal of the ladder gets its own code, so a client can tell what to fix.
    static func problem(_ error: TierChangeError) -> APIProblem {
        switch error {
        case .invalid: APIProblem(.invalidBody, error.description)
        case .exists: APIProblem(.conflict, error.description)
        case .unknown: APIProblem(.unknownTier, error.description)
        case .rankTaken: APIProblem(.tierRankTaken, error.description)
        case .thresholdsNotIncreasing: APIProblem(.tierThresholdsNotIncreasing, error.description)
        case .ladder, .tooMany: APIProblem(.tierLadderInvalid, error.description)
        case .inUse, .inHistory: APIProblem(.tierInUse, error.description)
        }
    }
}

struct TierList: Encodable, Sendable {
    var items: [TierBody]
}

/// A tier as the API shows it; `earn_rate_override_bp` is written out as null when unset.
struct TierBody: Encodable, Sendable {
    var tier: Tier

    init(_ tier: Tier) { self.tier = tier }

    enum CodingKeys: String, CodingKey {
        case tierID = "tier_id", code, name, rank, qualificationSpendMinor = "qualification_spend_minor"
        case qualificationWindowDays = "qualification_window_days", earnRateOverrideBp = "earn_rate_override_bp"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(tier.tierId, forKey: .tierID)
        try container.encode(tier.code, forKey: .code)
        try container.encode(tier.name, forKey: .name)
        try container.encode(tier.rank, forKey: .rank)
        try container.encode(tier.qualificationSpendMinor, forKey: .qualificationSpendMinor)
        try container.encode(tier.qualificationWindowDays, forKey: .qualificationWindowDays)
        try container.encode(tier.earnRateOverrideBp, forKey: .earnRateOverrideBp)
    }
}
