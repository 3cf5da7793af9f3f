import Foundation
import Logging
import LoyaltyCore
import PostgresNIO

/// A segment as the admin API shows it. `representation` is the API's JSON object (snake_case, nulls included),
/// its `definition` with dates in ISO 8601.
public struct AdminSegment: Sendable, Equatable {
    public var segmentID: Int64
    public var memberCount: Int64
    public var definition: SegmentDefinition
    public var representation: JSONValue
}

/// A campaign as the admin API shows it. `representation` is the API's JSON object (snake_case, nulls included);
/// bonus campaigns carry `progress` (see `CampaignProgress`), multiplier campaigns `progress: null`.
public struct AdminCampaign: Sendable, Equatable {
    public var campaignID: Int64
    public var kind: String
    public var state: String
    public var progress: CampaignProgress?
    public var representation: JSONValue
}

/// Which award a bonus-like campaign pays: a blast a marketer triggers, or one the runner pays on a schedule.
public enum BonusKind: String, Sendable, CaseIterable {
    /// Once to every member of a segment, when triggered.
    case bonus
    /// To each member (of the segment, if any) on their birthday, once a year, inside the window.
    case birthday
    /// Once to each member (of the segment, if any) whose first purchase falls inside the window.
    case welcome
}

/// What a bonus, birthday or welcome campaign is created with (validated by the caller; the table's CHECKs are
/// the last word).
public struct BonusCampaignDraft: Sendable, Equatable {
    public var kind: BonusKind
    public var name: String
    public var startsAt: Date
    public var endsAt: Date
    /// Required for a blast; optional for birthday and welcome campaigns (nil: every member).
    public var segmentID: Int64?
    public var bonusPoints: Int64
    public var expiresDays: Int
    /// nil: no cap.
    public var budgetPoints: Int64?

    public init(
        kind: BonusKind = .bonus, name: String, startsAt: Date, endsAt: Date, segmentID: Int64?, bonusPoints: Int64, expiresDays: Int,
        budgetPoints: Int64?
    ) {
        self.kind = kind
        self.name = name
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.segmentID = segmentID
        self.bonusPoints = bonusPoints
        self.expiresDays = expiresDays
        self.budgetPoints = budgetPoints
    }
}

/// What a multiplier or bonus campaign is made of, as created or as a draft's change leaves it.
public enum CampaignSpec: Sendable, Equatable {
    /// Validated by the core (its id is ignored); a segment restricts it to the segment's members.
    case multiplier(CampaignMultiplier, segmentID: Int64?)
    case bonus(BonusCampaignDraft)

    public var kind: String {
        switch self {
        case .multiplier: "multiplier"
        case .bonus(let draft): draft.kind.rawValue
        }
    }
}

/// A state change an admin asks for. `trigger` is separate (`CampaignAdminStore.trigger`): it starts a bonus run.
public enum CampaignTransition: String, Sendable, CaseIterable {
    /// draft → scheduled: approved; a multiplier campaign applies at checkout inside its window from now on.
    case schedule
    /// draft, scheduled or running → cancelled: never applies again; a running bonus run stops at its next batch.
    case cancel

    var from: Set<String> {
        switch self {
        case .schedule: ["draft"]
        case .cancel: ["draft", "scheduled", "running"]
        }
    }

    var to: String {
        switch self {
        case .schedule: "scheduled"
        case .cancel: "cancelled"
        }
    }
}

/// Segments and campaigns as marketers manage them through the admin API (migration 0008's tables). Every write
/// changes its rows and writes its audit row in one transaction, as `AdminMemberStore` does; every value is a
/// bound parameter.
public struct CampaignAdminStore: Sendable {
    public static let maximumPageSize = 200
    public static let states: Set<String> = ["draft", "scheduled", "running", "finished", "cancelled"]

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public static func segmentResource(_ id: Int64) -> String { "segment:\(id)" }
    public static func campaignResource(_ id: Int64) -> String { "campaign:\(id)" }

    static let timestamp = #"'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"#

    // The API representation of the row aliased `s`, then its stored definition.
    static let segmentColumns = """
        jsonb_build_object(
            'segment_id', s.segment_id, 'name', s.name, 'member_count', s.member_count,
            'refreshed_at', to_char(s.refreshed_at AT TIME ZONE 'UTC', \(timestamp)),
            'created_at', to_char(s.created_at AT TIME ZONE 'UTC', \(timestamp)),
            'updated_at', to_char(s.updated_at AT TIME ZONE 'UTC', \(timestamp)))::text,
        s.definition::text
        """

    // The API representation of the row aliased `c`, then its progress (bonus campaigns only).
    static let campaignColumns = """
        jsonb_build_object(
            'campaign_id', c.campaign_id, 'name', c.name, 'kind', c.kind, 'state', c.state,
            'starts_at', to_char(c.starts_at AT TIME ZONE 'UTC', \(timestamp)),
            'ends_at', to_char(c.ends_at AT TIME ZONE 'UTC', \(timestamp)),
            'multiplier_bp', c.multiplier_bp, 'extra_rate_bp', c.extra_rate_bp,
            'categories', to_jsonb(c.categories), 'skus', to_jsonb(c.skus), 'tier_codes', to_jsonb(c.tier_codes),
            'segment_id', c.segment_id, 'bonus_points', c.bonus_points, 'bonus_expires_days', c.bonus_expires_days,
            'budget_points', c.budget_points, 'created_by', c.created_by,
            'created_at', to_char(c.created_at AT TIME ZONE 'UTC', \(timestamp)),
            'updated_at', to_char(c.updated_at AT TIME ZONE 'UTC', \(timestamp)))::text,
        CASE WHEN c.kind <> 'multiplier' THEN campaign_progress(c.campaign_id)::text END
        """

    // MARK: Segments

    public func segment(_ segmentID: Int64) async throws -> AdminSegment? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.segmentColumns) FROM segments s WHERE s.segment_id = \(segmentID)", logger: logger)
        return try await Self.firstSegment(rows)
    }

    /// Newest first: ids below `cursor`; `nextCursor` is set when more may follow.
    public func segments(before cursor: Int64?, limit: Int) async throws -> (segments: [AdminSegment], nextCursor: Int64?) {
        let pageSize = Int64(min(max(limit, 1), Self.maximumPageSize))
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.segmentColumns) FROM segments s
            WHERE (\(cursor)::bigint IS NULL OR s.segment_id < \(cursor)::bigint)
            ORDER BY s.segment_id DESC LIMIT \(pageSize)
            """, logger: logger)
        var segments: [AdminSegment] = []
        for try await (text, definition) in rows.decode((String, String).self) {
            segments.append(try Self.makeSegment(text, definition))
        }
        return (segments, segments.count == Int(pageSize) ? segments.last?.segmentID : nil)
    }

    /// Saves a segment and fills it, with its audit row, in one transaction. A name in use is a conflict.
    public func createSegment(name: String, definition: SegmentDefinition, audit: AuditContext) async throws -> AdminSegment {
        // Stored as `CampaignStore.createSegment` stores it, so either can read what the other wrote.
        let json = String(decoding: try JSONEncoder().encode(definition), as: UTF8.self)
        let logger = self.logger
        do {
            return try await client.transaction(logger: logger) { connection in
                let rows = try await connection.query(
                    "INSERT INTO segments (name, definition) VALUES (\(name), \(json)::jsonb) RETURNING segment_id", logger: logger)
                var id: Int64?
                for try await value in rows.decode(Int64.self) { id = value }
                guard let id else { throw AdminStoreError.notFound("the new segment's id") }
                try await Self.fill(id, definition: definition, on: connection, logger: logger)
                let segment = try await Self.segment(id, on: connection, logger: logger)
                try await AuditLogStore.write(
                    AuditRecord(action: "segment.create", resource: Self.segmentResource(id), before: .null, after: segment.representation),
                    context: audit, on: connection, logger: logger)
                return segment
            }
        } catch let error as PSQLError where PostgresErrorText.sqlState(error) == "23505" {
            throw AdminStoreError.conflict("a segment named \"\(name)\" exists already")
        }
    }

    /// Replaces the segment's members with who matches its definition now. Refused while a bonus campaign is
    /// paying the segment: its run works through the members as they were when it was triggered.
    public func refreshSegment(_ segmentID: Int64, audit: AuditContext) async throws -> AdminSegment {
        let logger = self.logger
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                "SELECT \(unescaped: Self.segmentColumns) FROM segments s WHERE s.segment_id = \(segmentID) FOR UPDATE OF s",
                logger: logger)
            guard let before = try await Self.firstSegment(rows) else { throw AdminStoreError.notFound("segment \(segmentID)") }
            let running = try await connection.query(
                """
                SELECT campaign_id FROM campaigns WHERE segment_id = \(segmentID) AND kind = 'bonus' AND state = 'running'
                ORDER BY campaign_id LIMIT 1
                """, logger: logger)
            var runningCampaign: Int64?
            for try await campaignID in running.decode(Int64.self) { runningCampaign = campaignID }
            if let runningCampaign {
                throw AdminStoreError.conflict(
                    "segment \(segmentID) is being paid by running campaign \(runningCampaign); refresh it when the run is over")
            }
            try await Self.fill(segmentID, definition: before.definition, on: connection, logger: logger)
            let after = try await Self.segment(segmentID, on: connection, logger: logger)
            try await AuditLogStore.write(
                AuditRecord(
                    action: "segment.refresh", resource: Self.segmentResource(segmentID),
                    before: .object(["member_count": .integer(before.memberCount)]),
                    after: .object(["member_count": .integer(after.memberCount)])),
                context: audit, on: connection, logger: logger)
            return after
        }
    }

    /// `CampaignStore.refreshSegment`'s statements, on the caller's connection and transaction.
    @discardableResult
    static func fill(_ segmentID: Int64, definition: SegmentDefinition, on connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        _ = try await connection.query("DELETE FROM segment_members WHERE segment_id = \(segmentID)", logger: logger)
        let select = try definition.compiled(segmentID: segmentID)
        // In member order: the foreign key locks each member (KEY SHARE) as it is inserted, and payments lock
        // members FOR UPDATE in member order; the same order on both sides means they wait, never deadlock.
        let insert = PostgresQuery(
            unsafeSQL: "INSERT INTO segment_members (segment_id, member_id) " + select.sql + " ORDER BY m.member_id",
            binds: select.binds)
        _ = try await connection.query(insert, logger: logger)
        let rows = try await connection.query(
            """
            UPDATE segments SET member_count = (SELECT count(*) FROM segment_members WHERE segment_id = \(segmentID)),
                   refreshed_at = now(), updated_at = now()
            WHERE segment_id = \(segmentID) RETURNING member_count
            """, logger: logger)
        for try await count in rows.decode(Int64.self) { return count }
        return 0
    }

    static func segment(_ segmentID: Int64, on connection: PostgresConnection, logger: Logger) async throws -> AdminSegment {
        let rows = try await connection.query(
            "SELECT \(unescaped: segmentColumns) FROM segments s WHERE s.segment_id = \(segmentID)", logger: logger)
        guard let segment = try await firstSegment(rows) else { throw AdminStoreError.notFound("segment \(segmentID)") }
        return segment
    }

    static func firstSegment(_ rows: PostgresRowSequence) async throws -> AdminSegment? {
        for try await (text, definition) in rows.decode((String, String).self) { return try makeSegment(text, definition) }
        return nil
    }

    static func makeSegment(_ text: String, _ definitionText: String) throws -> AdminSegment {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        let definition = try JSONDecoder().decode(SegmentDefinition.self, from: Data(definitionText.utf8))
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let shown = try JSONDecoder().decode(JSONValue.self, from: try encoder.encode(definition))
        guard case .object(var fields) = value, case .integer(let id)? = fields["segment_id"],
            case .integer(let count)? = fields["member_count"]
        else { throw UnexpectedReply(description: "a segment row without segment_id or member_count") }
        fields["definition"] = shown
        return AdminSegment(segmentID: id, memberCount: count, definition: definition, representation: .object(fields))
    }

    // MARK: Campaigns

    public func campaign(_ campaignID: Int64) async throws -> AdminCampaign? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.campaignColumns) FROM campaigns c WHERE c.campaign_id = \(campaignID)", logger: logger)
        return try await Self.firstCampaign(rows)
    }

    /// Newest first, optionally in one state: ids below `cursor`; `nextCursor` is set when more may follow.
    public func campaigns(state: String?, before cursor: Int64?, limit: Int) async throws -> (campaigns: [AdminCampaign], nextCursor: Int64?) {
        let pageSize = Int64(min(max(limit, 1), Self.maximumPageSize))
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.campaignColumns) FROM campaigns c
            WHERE (\(state)::text IS NULL OR c.state = \(state)::text)
              AND (\(cursor)::bigint IS NULL OR c.campaign_id < \(cursor)::bigint)
            ORDER BY c.campaign_id DESC LIMIT \(pageSize)
            """, logger: logger)
        var campaigns: [AdminCampaign] = []
        for try await (text, progress) in rows.decode((String, String?).self) {
            campaigns.append(try Self.makeCampaign(text, progress))
        }
        return (campaigns, campaigns.count == Int(pageSize) ? campaigns.last?.campaignID : nil)
    }

    /// A multiplier campaign in state draft: `campaign` has been validated by the core (its id is ignored).
    public func createMultiplier(_ campaign: CampaignMultiplier, segmentID: Int64?, audit: AuditContext) async throws -> AdminCampaign {
        let logger = self.logger
        let createdBy = audit.actor.ledgerActor
        return try await client.transaction(logger: logger) { connection in
            if let segmentID { try await Self.requireSegment(segmentID, on: connection, logger: logger) }
            let rows = try await connection.query(
                """
                INSERT INTO campaigns (name, kind, state, starts_at, ends_at, multiplier_bp, extra_rate_bp, categories, skus,
                                       tier_codes, segment_id, created_by)
                VALUES (\(campaign.name), 'multiplier', 'draft', \(campaign.startsAt), \(campaign.endsAt),
                        \(campaign.multiplierBp)::bigint, \(campaign.extraRateBp)::bigint,
                        \(campaign.categories.map { Array($0).sorted() })::text[], \(campaign.skus.map { Array($0).sorted() })::text[],
                        \(campaign.tierCodes.map { Array($0).sorted() })::text[], \(segmentID)::bigint, \(createdBy))
                RETURNING campaign_id
                """, logger: logger)
            return try await Self.audited(created: rows, on: connection, audit: audit, logger: logger)
        }
    }

    /// A bonus, birthday or welcome campaign in state draft. An unknown segment is `invalid` naming `segment_id`.
    public func createBonus(_ draft: BonusCampaignDraft, audit: AuditContext) async throws -> AdminCampaign {
        let logger = self.logger
        let createdBy = audit.actor.ledgerActor
        return try await client.transaction(logger: logger) { connection in
            if let segmentID = draft.segmentID { try await Self.requireSegment(segmentID, on: connection, logger: logger) }
            let rows = try await connection.query(
                """
                INSERT INTO campaigns (name, kind, state, starts_at, ends_at, segment_id, bonus_points, bonus_expires_days,
                                       budget_points, created_by)
                VALUES (\(draft.name), \(draft.kind.rawValue), 'draft', \(draft.startsAt), \(draft.endsAt), \(draft.segmentID)::bigint, \(draft.bonusPoints),
                        \(Int32(draft.expiresDays)), \(draft.budgetPoints)::bigint, \(createdBy))
                RETURNING campaign_id
                """, logger: logger)
            return try await Self.audited(created: rows, on: connection, audit: audit, logger: logger)
        }
    }

    /// Changes a draft: `change` gets the draft as it is now (its row locked) and answers what it should be; the
    /// kind cannot change. Anything but a draft is a conflict. Audited as `campaign.update` with the changed fields.
    public func updateDraft(
        _ campaignID: Int64, audit: AuditContext, _ change: @Sendable (AdminCampaign) throws -> CampaignSpec
    ) async throws -> AdminCampaign {
        let logger = self.logger
        return try await client.transaction(logger: logger) { connection in
            let before = try await Self.lock(campaignID, on: connection, logger: logger)
            guard before.state == "draft" else {
                throw AdminStoreError.conflict("campaign \(campaignID) is \(before.state); only a draft can be changed")
            }
            let spec = try change(before)
            guard spec.kind == before.kind else {
                throw AdminStoreError.invalid(field: "kind", reason: "cannot change; create a new campaign")
            }
            let rows: PostgresRowSequence
            switch spec {
            case .multiplier(let campaign, let segmentID):
                if let segmentID { try await Self.requireSegment(segmentID, on: connection, logger: logger) }
                rows = try await connection.query(
                    """
                    UPDATE campaigns SET name = \(campaign.name), starts_at = \(campaign.startsAt), ends_at = \(campaign.endsAt),
                        multiplier_bp = \(campaign.multiplierBp)::bigint, extra_rate_bp = \(campaign.extraRateBp)::bigint,
                        categories = \(campaign.categories.map { Array($0).sorted() })::text[],
                        skus = \(campaign.skus.map { Array($0).sorted() })::text[],
                        tier_codes = \(campaign.tierCodes.map { Array($0).sorted() })::text[],
                        segment_id = \(segmentID)::bigint, updated_at = now()
                    WHERE campaign_id = \(campaignID) RETURNING campaign_id
                    """, logger: logger)
            case .bonus(let draft):
                if let segmentID = draft.segmentID { try await Self.requireSegment(segmentID, on: connection, logger: logger) }
                rows = try await connection.query(
                    """
                    UPDATE campaigns SET name = \(draft.name), starts_at = \(draft.startsAt), ends_at = \(draft.endsAt),
                        segment_id = \(draft.segmentID)::bigint, bonus_points = \(draft.bonusPoints),
                        bonus_expires_days = \(Int32(draft.expiresDays)), budget_points = \(draft.budgetPoints)::bigint,
                        updated_at = now()
                    WHERE campaign_id = \(campaignID) RETURNING campaign_id
                    """, logger: logger)
            }
            for try await _ in rows.decode(Int64.self) {}
            let after = try await Self.campaign(campaignID, on: connection, logger: logger)
            let (old, new) = Self.changes(before.representation, after.representation)
            try await AuditLogStore.write(
                AuditRecord(action: "campaign.update", resource: Self.campaignResource(campaignID), before: old, after: new),
                context: audit, on: connection, logger: logger)
            return after
        }
    }

    /// The fields that differ, as (before, after) objects of only those fields; bookkeeping fields left out.
    static func changes(_ before: JSONValue, _ after: JSONValue) -> (JSONValue, JSONValue) {
        guard case .object(let old) = before, case .object(let new) = after else { return (before, after) }
        let ignored: Set<String> = ["updated_at", "progress"]
        var changedBefore: [String: JSONValue] = [:]
        var changedAfter: [String: JSONValue] = [:]
        for key in Set(old.keys).union(new.keys) where !ignored.contains(key) && old[key] != new[key] {
            changedBefore[key] = old[key] ?? .null
            changedAfter[key] = new[key] ?? .null
        }
        return (.object(changedBefore), .object(changedAfter))
    }

    /// Moves a campaign along its lifecycle (see `CampaignTransition`). A campaign in another state is a conflict,
    /// as is scheduling one whose window is over.
    public func transition(_ campaignID: Int64, _ transition: CampaignTransition, audit: AuditContext) async throws -> AdminCampaign {
        let logger = self.logger
        return try await client.transaction(logger: logger) { connection in
            let before = try await Self.lock(campaignID, on: connection, logger: logger)
            guard transition.from.contains(before.state) else {
                throw AdminStoreError.conflict(
                    "campaign \(campaignID) is \(before.state); only a campaign that is \(transition.from.sorted().joined(separator: " or ")) can be \(transition.to)")
            }
            let rows = try await connection.query(
                """
                UPDATE campaigns SET state = \(transition.to), updated_at = now(),
                       run_finished_at = CASE WHEN state = 'running' THEN now() ELSE run_finished_at END,
                       finish_reason = CASE WHEN state = 'running' THEN 'cancelled' ELSE finish_reason END
                WHERE campaign_id = \(campaignID) AND (\(transition.rawValue) <> 'schedule' OR ends_at > now())
                RETURNING campaign_id
                """, logger: logger)
            var changed = false
            for try await _ in rows.decode(Int64.self) { changed = true }
            guard changed else {
                throw AdminStoreError.conflict("campaign \(campaignID)'s window is over; it cannot be scheduled")
            }
            let after = try await Self.campaign(campaignID, on: connection, logger: logger)
            try await AuditLogStore.write(
                AuditRecord(
                    action: "campaign.\(transition.rawValue)", resource: Self.campaignResource(campaignID),
                    before: .object(["state": .string(before.state)]), after: .object(["state": .string(after.state)])),
                context: audit, on: connection, logger: logger)
            return after
        }
    }

    /// Starts a bonus campaign's run (`campaign_trigger`), audited. A draft must be scheduled first (conflict);
    /// the run's own refusals are `LedgerStoreError`s: unknownCampaign, notABonusCampaign, campaignEnded,
    /// campaignAlreadyRunning, campaignHasNoSegment. The members are paid by `CampaignRunner`.
    public func trigger(_ campaignID: Int64, audit: AuditContext) async throws -> AdminCampaign {
        let logger = self.logger
        do {
            return try await client.transaction(logger: logger) { connection in
                let rows = try await connection.query(
                    "SELECT kind, state FROM campaigns WHERE campaign_id = \(campaignID) FOR UPDATE", logger: logger)
                var found: (kind: String, state: String)?
                for try await (kind, state) in rows.decode((String, String).self) { found = (kind, state) }
                guard let found else { throw LedgerStoreError.unknownCampaign(campaignID) }
                if found.kind == "bonus", found.state == "draft" {
                    throw AdminStoreError.conflict("campaign \(campaignID) is a draft; schedule it before triggering it")
                }
                // Read to the end: the function's refusal arrives with its row, not with the query's start.
                let started = try await connection.query("SELECT campaign_trigger(\(campaignID))::text", logger: logger)
                for try await _ in started.decode(String?.self) {}
                let after = try await Self.campaign(campaignID, on: connection, logger: logger)
                try await AuditLogStore.write(
                    AuditRecord(
                        action: "campaign.trigger", resource: Self.campaignResource(campaignID),
                        before: .object(["state": .string(found.state)]),
                        after: .object([
                            "state": .string(after.state),
                            "target_members": after.progress?.targetMembers.map { .integer($0) } ?? .null,
                        ])),
                    context: audit, on: connection, logger: logger)
                return after
            }
        } catch let error as PSQLError where PostgresErrorText.sqlState(error)?.hasPrefix("LY") == true {
            throw LedgerStoreError.from(error)
        }
    }

    static func requireSegment(_ segmentID: Int64, on connection: PostgresConnection, logger: Logger) async throws {
        let rows = try await connection.query(
            "SELECT segment_id FROM segments WHERE segment_id = \(segmentID) FOR SHARE", logger: logger)
        for try await _ in rows.decode(Int64.self) { return }
        throw AdminStoreError.invalid(field: "segment_id", reason: "names no segment: \(segmentID)")
    }

    static func audited(created rows: PostgresRowSequence, on connection: PostgresConnection, audit: AuditContext, logger: Logger) async throws -> AdminCampaign {
        var id: Int64?
        for try await value in rows.decode(Int64.self) { id = value }
        guard let id else { throw AdminStoreError.notFound("the new campaign's id") }
        let campaign = try await campaign(id, on: connection, logger: logger)
        try await AuditLogStore.write(
            AuditRecord(action: "campaign.create", resource: campaignResource(id), before: .null, after: campaign.representation.removing("progress")),
            context: audit, on: connection, logger: logger)
        return campaign
    }

    static func lock(_ campaignID: Int64, on connection: PostgresConnection, logger: Logger) async throws -> AdminCampaign {
        let rows = try await connection.query(
            "SELECT \(unescaped: campaignColumns) FROM campaigns c WHERE c.campaign_id = \(campaignID) FOR UPDATE OF c", logger: logger)
        guard let campaign = try await firstCampaign(rows) else { throw AdminStoreError.notFound("campaign \(campaignID)") }
        return campaign
    }

    static func campaign(_ campaignID: Int64, on connection: PostgresConnection, logger: Logger) async throws -> AdminCampaign {
        let rows = try await connection.query(
            "SELECT \(unescaped: campaignColumns) FROM campaigns c WHERE c.campaign_id = \(campaignID)", logger: logger)
        guard let campaign = try await firstCampaign(rows) else { throw AdminStoreError.notFound("campaign \(campaignID)") }
        return campaign
    }

    static func firstCampaign(_ rows: PostgresRowSequence) async throws -> AdminCampaign? {
        for try await (text, progress) in rows.decode((String, String?).self) { return try makeCampaign(text, progress) }
        return nil
    }

    static func makeCampaign(_ text: String, _ progressText: String?) throws -> AdminCampaign {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        guard case .object(var fields) = value, case .integer(let id)? = fields["campaign_id"],
            case .string(let kind)? = fields["kind"], case .string(let state)? = fields["state"]
        else { throw UnexpectedReply(description: "a campaign row without campaign_id, kind or state") }
        let progress = try progressText.map { try LedgerJSON.decoder.decode(CampaignProgress.self, from: Data($0.utf8)) }
        fields["progress"] = progress.map(Self.progressValue) ?? .null
        return AdminCampaign(campaignID: id, kind: kind, state: state, progress: progress, representation: .object(fields))
    }

    /// The API's `progress` object: members and points paid against target and budget, and the run's pace.
    static func progressValue(_ progress: CampaignProgress) -> JSONValue {
        func integer(_ value: Int64?) -> JSONValue { value.map { .integer($0) } ?? .null }
        func number(_ value: Double?) -> JSONValue { value.map { .number(($0 * 1_000).rounded() / 1_000) } ?? .null }
        return .object([
            "awarded_members": .integer(progress.awardedMembers), "target_members": integer(progress.targetMembers),
            "awarded_points": .integer(progress.awardedPoints), "budget_points": integer(progress.budgetPoints),
            "finish_reason": progress.finishReason.map { .string($0) } ?? .null,
            "elapsed_s": number(progress.elapsedS), "rate_per_s": number(progress.ratePerS), "eta_s": number(progress.etaS),
        ])
    }
}

extension JSONValue {
    /// The object without `key` (anything else unchanged).
    func removing(_ key: String) -> JSONValue {
        guard case .object(var fields) = self else { return self }
        fields[key] = nil
        return .object(fields)
    }
}
