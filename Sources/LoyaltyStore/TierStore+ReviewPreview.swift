import Foundation
import Logging
import PostgresNIO

/// What the tier review would decide for one member (`tier_review_preview`, the same decision function the review
/// job uses).
public struct TierReviewDecision: Sendable, Codable, Equatable {
    /// `keep`, `upgrade` or `downgrade`.
    public var action: String
    public var memberID: Int64
    public var currentTier: String
    /// The tier after the review (the current one when kept).
    public var newTier: String
    /// The spend (minor units) the decision rests on, over the deciding tier's window.
    public var qualifyingSpendMinor: Int64
    public var reason: String
    /// When the member was last reviewed (RFC 3339, UTC).
    public var tierReviewedAt: String
}

public struct TierReviewPreviewPage: Sendable, Equatable {
    public var decisions: [TierReviewDecision]
    /// The member id to pass as `after` for the next page; nil on the last.
    public var nextCursor: Int64?
}

extension TierStore {
    /// Upper bound on one page of the review preview.
    public static let maximumPreviewPageSize = 500

    /// The decisions a review at `asOf` would take for the members due then, in member id order after `after`.
    /// Reads only: nothing is changed or locked.
    public func reviewPreview(
        reviewDays: Int, graceDays: Int, asOf: Date, after cursor: Int64?, limit: Int
    ) async throws -> TierReviewPreviewPage {
        precondition(reviewDays >= 0 && graceDays >= 0)
        let pageSize = Int32(min(max(limit, 1), Self.maximumPreviewPageSize))
        let rows = try await client.query(
            """
            SELECT member_id, from_tier, to_tier, action, spend_minor, reason,
                to_char(tier_reviewed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
            FROM tier_review_preview(\(Int32(reviewDays)), \(Int32(graceDays)), \(asOf), \(cursor), \(pageSize))
            """, logger: logger)
        var decisions: [TierReviewDecision] = []
        for try await (member, from, to, action, spend, reason, reviewedAt)
            in rows.decode((Int64, String, String, String, Int64, String, String).self)
        {
            decisions.append(TierReviewDecision(
                action: action, memberID: member, currentTier: from, newTier: to, qualifyingSpendMinor: spend,
                reason: reason, tierReviewedAt: reviewedAt))
        }
        let next = decisions.count == Int(pageSize) ? decisions.last?.memberID : nil
        return TierReviewPreviewPage(decisions: decisions, nextCursor: next)
    }
}
