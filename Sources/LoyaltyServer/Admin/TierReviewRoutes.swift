import Foundation
import Hummingbird
import LoyaltyStore

/// `GET /v1/tier-review/preview` (admin): what the next tier review would do, member by member, with the review
/// policy of the rules in force, as of now or `as_of`. Cursor-paged on the member id; reads only, so it can be
/// asked any number of times. The decision is the review job's own (`tier_review_decision` in SQL).
enum TierReviewRoutes {
    @Sendable static func preview(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["as_of", "cursor", "limit"])
        let asOf = try parameters.instant("as_of") ?? Date()
        let cursor = try parameters.cursor()
        let limit = try parameters.limit()
        let policy = try RulesRoutes.rulesInForce(services).current.ruleSet.tierReview
        let page = try await services.tiers(context).reviewPreview(
            reviewDays: policy.reviewEveryDays, graceDays: policy.graceDays, asOf: asOf, after: cursor, limit: limit)
        return try JSONResponse.make(TierReviewPreviewBody(
            asOf: RulesBody.timestamp(asOf), reviewEveryDays: policy.reviewEveryDays, graceDays: policy.graceDays,
            items: page.decisions.map(TierReviewItem.init), nextCursor: page.nextCursor.map { String($0) }))
    }
}

struct TierReviewPreviewBody: Encodable, Sendable {
    var asOf: String
    var reviewEveryDays: Int
    var graceDays: Int
    var items: [TierReviewItem]
    var nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case asOf = "as_of", reviewEveryDays = "review_every_days", graceDays = "grace_days", items
        case nextCursor = "next_cursor"
    }

    // Explicit null on the last page, like every other page.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(asOf, forKey: .asOf)
        try container.encode(reviewEveryDays, forKey: .reviewEveryDays)
        try container.encode(graceDays, forKey: .graceDays)
        try container.encode(items, forKey: .items)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

struct TierReviewItem: Encodable, Sendable {
    var decision: TierReviewDecision

    init(_ decision: TierReviewDecision) { self.decision = decision }

    enum CodingKeys: String, CodingKey {
        case memberID = "member_id", action, currentTier = "current_tier", newTier = "new_tier"
        case qualifyingSpendMinor = "qualifying_spend_minor", reason, tierReviewedAt = "tier_reviewed_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(decision.memberID, forKey: .memberID)
        try container.encode(decision.action, forKey: .action)
        try container.encode(decision.currentTier, forKey: .currentTier)
        try container.encode(decision.newTier, forKey: .newTier)
        try container.encode(decision.qualifyingSpendMinor, forKey: .qualifyingSpendMinor)
        try container.encode(decision.reason, forKey: .reason)
        try container.encode(decision.tierReviewedAt, forKey: .tierReviewedAt)
    }
}
