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

    /// Multiplier campaigns that can still apply to a purchase: live ones, and finished or cancelled ones whose
    /// window ended within `lookbackDays`, with their scheduling and cancelling times: an offline till's purchase is
    /// priced by the campaigns in force at its time (`CampaignMultiplier.isActive(at:)`). A campaign cancelled
    /// before it started (or as it was scheduled) was never in force and is left out. A row the core refuses is skipped with a log line.
    public func multipliers(lookbackDays: Int) async throws -> [CampaignMultiplier] {
        let rows = try await client.query(
            """
            SELECT campaign_id, name, starts_at, ends_at, multiplier_bp, extra_rate_bp, categories, skus, tier_codes,
                   segment_id IS NOT NULL, scheduled_at, cancelled_at
            FROM campaigns
            WHERE kind = 'multiplier' AND state IN ('scheduled', 'running', 'finished', 'cancelled')
              AND (cancelled_at IS NULL OR cancelled_at > greatest(starts_at, scheduled_at))
              AND ends_at > now() - make_interval(days => \(Int32(lookbackDays)))
            ORDER BY campaign_id
            LIMIT 1000
            """, logger: logger)
        var result: [CampaignMultiplier] = []
        for try await (id, name, startsAt, endsAt, multiplier, extra, categories, skus, tiers, segmented, scheduledAt, cancelledAt) in rows.decode(
            (Int64, String, Date, Date, Int64?, Int64?, [String]?, [String]?, [String]?, Bool, Date?, Date?).self)
        {
            let effect: CampaignMultiplier.Effect
            if let multiplier { effect = .multiplier(bp: multiplier) } else { effect = .extraRate(bp: extra ?? 0) }
            do {
                result.append(try CampaignMultiplier(
                    campaignID: id, name: name, startsAt: startsAt, endsAt: endsAt, effect: effect,
                    categories: categories.map(Set.init), skus: skus.map(Set.init), tierCodes: tiers.map(Set.init),
                    requiresSegment: segmented, scheduledAt: scheduledAt, cancelledAt: cancelledAt))
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

/// Where a bonus campaign's run stands: members paid of the segment's size when triggered, points against the
/// budget, and (from a batch) how many this call paid and whether the run is over.
public struct CampaignProgress: Sendable, Codable, Equatable {
    public var campaignId: Int64
    public var state: String
    public var awardedMembers: Int64
    public var targetMembers: Int64?
    public var awardedPoints: Int64
    public var budgetPoints: Int64?
    public var finishReason: String?
    public var elapsedS: Double?
    public var paid: Int?
    /// From a blast batch: the run is over.
    public var done: Bool?
    /// From a birthday or welcome pass: there is more to pay now (call again at once).
    public var more: Bool?
    /// From a batch: [member id, new ledger version] of each member it paid, for the member cache.
    public var paidMembers: [[Int64]]?

    /// `paidMembers` as pairs; malformed pairs are dropped (the cache entry then simply ages out).
    public var paidMemberVersions: [(memberID: Int64, ledgerVersion: Int64)] {
        (paidMembers ?? []).compactMap { $0.count == 2 ? ($0[0], $0[1]) : nil }
    }

    /// Members paid per second so far.
    public var ratePerS: Double? {
        guard let elapsedS, elapsedS > 0 else { return nil }
        return Double(awardedMembers) / elapsedS
    }

    /// Seconds to go at the rate so far.
    public var etaS: Double? {
        guard let rate = ratePerS, rate > 0, let target = targetMembers else { return nil }
        return Double(max(0, target - awardedMembers)) / rate
    }
}

extension CampaignStore {
    /// A segment saved with its definition and filled at once; returns its id and member count.
    public func createSegment(name: String, definition: SegmentDefinition) async throws -> (id: Int64, members: Int64) {
        let json = String(decoding: try JSONEncoder().encode(definition), as: UTF8.self)
        let rows = try await client.query(
            "INSERT INTO segments (name, definition) VALUES (\(name), \(json)::jsonb) RETURNING segment_id", logger: logger)
        var id: Int64 = 0
        for try await value in rows.decode(Int64.self) { id = value }
        return (id, try await refreshSegment(id, definition: definition))
    }

    /// Replaces the segment's members with who matches now, in one transaction.
    @discardableResult
    public func refreshSegment(_ segmentID: Int64, definition: SegmentDefinition) async throws -> Int64 {
        try await client.transaction(logger: logger) { connection in
            try await CampaignAdminStore.fill(segmentID, definition: definition, on: connection, logger: logger)
        }
    }

    /// How many members a definition selects now, without saving anything.
    public func previewCount(_ definition: SegmentDefinition) async throws -> Int64 {
        let select = try definition.compiled()
        let rows = try await client.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM (\(select.sql)) matching", binds: select.binds), logger: logger)
        for try await count in rows.decode(Int64.self) { return count }
        return 0
    }

    public func createBonus(
        name: String, segmentID: Int64, bonusPoints: Int64, expiresDays: Int, budgetPoints: Int64?, createdBy: String,
        startsAt: Date = Date(), endsAt: Date = Date().addingTimeInterval(30 * 86_400)
    ) async throws -> Int64 {
        let rows = try await client.query(
            """
            INSERT INTO campaigns (name, kind, state, starts_at, ends_at, segment_id, bonus_points, bonus_expires_days,
                                   budget_points, created_by)
            VALUES (\(name), 'bonus', 'scheduled', \(startsAt), \(endsAt), \(segmentID), \(bonusPoints), \(Int32(expiresDays)),
                    \(budgetPoints)::bigint, \(createdBy))
            RETURNING campaign_id
            """, logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        throw StoreError.notFound("the new campaign's id")
    }

    public func trigger(_ campaignID: Int64) async throws(LedgerStoreError) -> CampaignProgress {
        try await progressCall("SELECT campaign_trigger(\(campaignID))::text")
    }

    /// Pays up to `batchSize` more members (see `campaign_award_batch`).
    public func awardBatch(_ campaignID: Int64, batchSize: Int, actor: String) async throws(LedgerStoreError) -> CampaignProgress {
        try await progressCall("SELECT campaign_award_batch(\(campaignID), \(Int32(batchSize)), \(actor))::text")
    }

    public func progress(_ campaignID: Int64) async throws(LedgerStoreError) -> CampaignProgress? {
        do {
            return try await progressCall("SELECT campaign_progress(\(campaignID))::text")
        } catch .invariantViolated {
            return nil
        }
    }

    /// One pass of a birthday or welcome campaign (`campaign_occasion_batch`): pays up to `batchSize` members;
    /// `more` says whether to call again at once. `now` is for tests (the database's clock otherwise).
    public func occasionBatch(_ campaignID: Int64, batchSize: Int, actor: String, now: Date? = nil) async throws(LedgerStoreError) -> CampaignProgress {
        if let now {
            return try await progressCall("SELECT campaign_occasion_batch(\(campaignID), \(Int32(batchSize)), \(actor), \(now))::text")
        }
        return try await progressCall("SELECT campaign_occasion_batch(\(campaignID), \(Int32(batchSize)), \(actor))::text")
    }

    /// Birthday and welcome campaigns whose window has opened and that are not over (scheduled ones start on
    /// their first pass).
    public func liveOccasionCampaigns(now: Date? = nil) async throws -> [Int64] {
        let rows = try await client.query(
            """
            SELECT campaign_id FROM campaigns
            WHERE kind IN ('birthday', 'welcome') AND state IN ('scheduled', 'running')
              AND starts_at <= coalesce(\(now)::timestamptz, now())
            ORDER BY campaign_id LIMIT 1000
            """, logger: logger)
        var ids: [Int64] = []
        for try await id in rows.decode(Int64.self) { ids.append(id) }
        return ids
    }

    /// A birthday or welcome campaign (kind `birthday` or `welcome`), scheduled; for tests and scripts. The admin
    /// API creates drafts through `CampaignAdminStore`.
    public func createOccasion(
        kind: String, name: String, segmentID: Int64?, bonusPoints: Int64, expiresDays: Int, budgetPoints: Int64?,
        startsAt: Date, endsAt: Date, createdBy: String
    ) async throws -> Int64 {
        let rows = try await client.query(
            """
            INSERT INTO campaigns (name, kind, state, starts_at, ends_at, segment_id, bonus_points, bonus_expires_days,
                                   budget_points, created_by)
            VALUES (\(name), \(kind), 'scheduled', \(startsAt), \(endsAt), \(segmentID)::bigint, \(bonusPoints), \(Int32(expiresDays)),
                    \(budgetPoints)::bigint, \(createdBy))
            RETURNING campaign_id
            """, logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        throw StoreError.notFound("the new campaign's id")
    }

    /// Multiplier campaigns whose window is over move from scheduled or running to finished (`finish_reason`
    /// "window ended", finished at their end), so the admin API shows what is live. Returns how many moved.
    @discardableResult
    public func finishEndedMultipliers() async throws -> Int {
        let rows = try await client.query(
            """
            WITH ended AS (
                UPDATE campaigns SET state = 'finished', finish_reason = 'window ended', run_finished_at = ends_at,
                       updated_at = now()
                WHERE kind = 'multiplier' AND state IN ('scheduled', 'running') AND ends_at <= now()
                RETURNING 1)
            SELECT count(*)::int8 FROM ended
            """, logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Bonus campaigns whose run is under way (a server that restarts picks them up again).
    public func runningBonusCampaigns() async throws -> [Int64] {
        let rows = try await client.query(
            "SELECT campaign_id FROM campaigns WHERE kind = 'bonus' AND state = 'running' ORDER BY campaign_id", logger: logger)
        var ids: [Int64] = []
        for try await id in rows.decode(Int64.self) { ids.append(id) }
        return ids
    }

    private func progressCall(_ query: PostgresQuery) async throws(LedgerStoreError) -> CampaignProgress {
        let text: String?
        do {
            let rows = try await client.query(query, logger: logger)
            var value: String?
            for try await row in rows.decode(String?.self) { value = row }
            text = value
        } catch {
            throw LedgerStoreError.from(error)
        }
        guard let text, let data = Optional(Data(text.utf8)),
              let progress = try? LedgerJSON.decoder.decode(CampaignProgress.self, from: data)
        else { throw .invariantViolated("no campaign progress answered") }
        return progress
    }
}
