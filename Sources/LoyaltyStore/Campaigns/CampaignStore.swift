import Foundation
import Logging
import LoyaltyCore
import PostgresNIO

/// Campaigns in PostgreSQL (migration 0008). The checkout reads multiplier campaigns from memory, not from here:
/// `multiplierVersion` is the one cheap row a server polls to know when to reload them.
public struct CampaignStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Moves on every change to campaigns or to segment membership.
    public func multiplierVersion() async throws -> Int64 {
        let rows = try await client.query("SELECT version FROM campaigns_version", logger: logger)
        for try await version in rows.decode(Int64.self) { return version }
        return 0
    }

    /// Multiplier campaigns that can still apply to a purchase: live ones, and finished ones whose window ended
    /// within `lookbackDays` (an offline till's purchase is priced by the campaigns in force at its time).
    /// Cancelled campaigns never apply. A row the core refuses is skipped with a log line, not served.
    public func multipliers(lookbackDays: Int) async throws -> [CampaignMultiplier] {
        let rows = try await client.query(
            """
            SELECT campaign_id, name, starts_at, ends_at, multiplier_bp, extra_rate_bp, categories, skus, tier_codes,
                   segment_id IS NOT NULL
            FROM campaigns
            WHERE kind = 'multiplier' AND state IN ('scheduled', 'running', 'finished')
              AND ends_at > now() - make_interval(days => \(Int32(lookbackDays)))
            ORDER BY campaign_id
            LIMIT 1000
            """, logger: logger)
        var result: [CampaignMultiplier] = []
        for try await (id, name, startsAt, endsAt, multiplier, extra, categories, skus, tiers, segmented) in rows.decode(
            (Int64, String, Date, Date, Int64?, Int64?, [String]?, [String]?, [String]?, Bool).self)
        {
            let effect: CampaignMultiplier.Effect
            if let multiplier { effect = .multiplier(bp: multiplier) } else { effect = .extraRate(bp: extra ?? 0) }
            do {
                result.append(try CampaignMultiplier(
                    campaignID: id, name: name, startsAt: startsAt, endsAt: endsAt, effect: effect,
                    categories: categories.map(Set.init), skus: skus.map(Set.init), tierCodes: tiers.map(Set.init),
                    requiresSegment: segmented))
            } catch {
                logger.error("campaign refused by the rules core; not applied", metadata: ["campaign": "\(id)", "error": "\(error)"])
            }
        }
        return result
    }

    /// A new multiplier campaign (validated by the core first, so the table never holds one the checkout refuses).
    public func createMultiplier(_ campaign: CampaignMultiplier, segmentID: Int64? = nil, state: String = "scheduled",
                                 createdBy: String) async throws -> Int64 {
        let rows = try await client.query(
            """
            INSERT INTO campaigns (name, kind, state, starts_at, ends_at, multiplier_bp, extra_rate_bp, categories, skus,
                                   tier_codes, segment_id, created_by)
            VALUES (\(campaign.name), 'multiplier', \(state), \(campaign.startsAt), \(campaign.endsAt),
                    \(campaign.multiplierBp)::bigint, \(campaign.extraRateBp)::bigint,
                    \(campaign.categories.map { Array($0).sorted() })::text[], \(campaign.skus.map { Array($0).sorted() })::text[],
                    \(campaign.tierCodes.map { Array($0).sorted() })::text[], \(segmentID)::bigint, \(createdBy))
            RETURNING campaign_id
            """, logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        throw StoreError.notFound("the new campaign's id")
    }
}
