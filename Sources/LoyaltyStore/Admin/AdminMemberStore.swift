import Foundation
import Logging
import PostgresNIO

/// Members as admins manage them. Every write locks the member row, changes it, bumps its profile and ledger
/// versions and writes its audit row, all in one transaction.
public struct AdminMemberStore: Sendable {
    public static let maximumPageSize = 200

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    // The API representation, built by PostgreSQL from the row aliased `m` (also in RETURNING).
    static let memberColumns = """
        jsonb_build_object(
            'member_id', m.member_id, 'card_number', m.card_number, 'phone', m.phone, 'email', m.email,
            'given_name', m.given_name, 'family_name', m.family_name, 'birth_date', to_char(m.birth_date, 'YYYY-MM-DD'),
            'tier_code', (SELECT t.code FROM tiers t WHERE t.tier_id = m.tier_id), 'status', m.status,
            'tags', to_jsonb(m.tags),
            'consents', jsonb_build_object(
                'email', coalesce(m.consents -> 'email' = 'true'::jsonb, false),
                'sms', coalesce(m.consents -> 'sms' = 'true'::jsonb, false),
                'push', coalesce(m.consents -> 'push' = 'true'::jsonb, false)),
            'version', m.profile_version,
            'enrolled_at', to_char(m.enrolled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'updated_at', to_char(m.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'erased_at', to_char(m.erased_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text,
        m.ledger_version, m.member_id, m.status, m.profile_version
        """

    public static func resource(_ memberID: Int64) -> String { "member:\(memberID)" }

    // MARK: Reads

    public func find(memberID: Int64) async throws -> AdminMember? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.memberColumns) FROM members m WHERE m.member_id = \(memberID)", logger: logger)
        return try await Self.first(rows)
    }

    public func exists(memberID: Int64) async throws -> Bool {
        let rows = try await client.query("SELECT 1::int4 FROM members WHERE member_id = \(memberID)", logger: logger)
        for try await _ in rows.decode(Int32.self) { return true }
        return false
    }

    /// Members matching `lookup` with ids above `cursor`, ascending; `nextCursor` is set when more may follow.
    public func search(_ lookup: MemberLookup, after cursor: Int64?, limit: Int) async throws -> (members: [AdminMember], nextCursor: Int64?) {
        let pageSize = Int64(min(max(limit, 1), Self.maximumPageSize))
        let after = cursor ?? 0
        let query: PostgresQuery =
            switch lookup {
            case .card(let card):
                "SELECT \(unescaped: Self.memberColumns) FROM members m WHERE m.card_number = \(card) AND m.member_id > \(after) ORDER BY m.member_id LIMIT \(pageSize)"
            case .phone(let phone):
                "SELECT \(unescaped: Self.memberColumns) FROM members m WHERE m.phone = \(phone) AND m.member_id > \(after) ORDER BY m.member_id LIMIT \(pageSize)"
            case .email(let email):
                // lower(email) matches the members_email_idx expression index.
                "SELECT \(unescaped: Self.memberColumns) FROM members m WHERE lower(m.email) = lower(\(email)) AND m.member_id > \(after) ORDER BY m.member_id LIMIT \(pageSize)"
            }
        var members: [AdminMember] = []
        for try await row in try await client.query(query, logger: logger).decode((String, Int64, Int64, String, Int64).self) {
            members.append(AdminMember(row))
        }
        let next = members.count == Int(pageSize) ? members.last?.memberID : nil
        return (members, next)
    }

    // MARK: Writes

    public func create(_ profile: MemberProfile, audit: AuditContext) async throws -> AdminMember {
        let consents = try JSONValue.object([
            "email": .bool(profile.consents.email), "sms": .bool(profile.consents.sms), "push": .bool(profile.consents.push),
        ]).jsonText()
        let logger = self.logger
        return try await Self.mappingConstraintErrors {
            try await client.transaction(logger: logger) { connection in
                let rows = try await connection.query(
                    """
                    INSERT INTO members AS m (card_number, phone, email, given_name, family_name, birth_date, tier_id, tags, consents)
                    SELECT \(profile.cardNumber), \(profile.phone), \(profile.email), \(profile.givenName), \(profile.familyName),
                           \(profile.birthDate)::date, t.tier_id, \(profile.tags)::text[], \(consents)::jsonb
                    FROM tiers t WHERE (\(profile.tierCode)::text IS NULL OR t.code = \(profile.tierCode)::text)
                    ORDER BY t.rank LIMIT 1
                    RETURNING \(unescaped: Self.memberColumns)
                    """, logger: logger)
                guard let member = try await Self.first(rows) else {
                    throw AdminStoreError.invalid(field: "tier_code", reason: "names no tier: \"\(profile.tierCode ?? "")\"")
                }
                try await AuditLogStore.write(
                    AuditRecord(action: "member.create", resource: Self.resource(member.memberID), before: .null, after: try member.representation()),
                    context: audit, on: connection, logger: logger)
                return member
            }
        }
    }

    /// Applies `patch`. With `expectedVersion`, refuses (conflict) unless the member is still at that version.
    public func update(
        memberID: Int64, _ patch: MemberProfilePatch, expectedVersion: Int64?, audit: AuditContext
    ) async throws -> AdminMember {
        let consentsPatch = try JSONValue.object(patch.consents.mapValues { .bool($0) }).jsonText()
        let logger = self.logger
        return try await Self.mappingConstraintErrors {
            try await client.transaction(logger: logger) { connection in
                let before = try await Self.lock(memberID: memberID, on: connection, logger: logger)
                if let expectedVersion, expectedVersion != before.version {
                    throw AdminStoreError.conflict(
                        "member \(memberID) is at version \(before.version), not \(expectedVersion); read it again and retry")
                }
                guard !before.isErased else { throw AdminStoreError.conflict("member \(memberID) is erased; its profile cannot change") }
                var tierID: Int64?
                if let code = patch.tierCode {
                    let id = try await Self.tierID(code: code, on: connection, logger: logger)
                    let reason = "set by \(audit.actor.role.rawValue) token \(audit.actor.tokenID) (\(audit.actor.name))"
                    // Through the tier history like every other tier change (tier_changes says who and why).
                    try await connection.query(
                        """
                        SELECT tier_record_change(m.member_id, m.tier_id, t.tier_id, \(reason),
                            member_spend_minor(m.member_id, t.qualification_window_days, now()), \(audit.actor.ledgerActor))::text
                        FROM members m JOIN tiers t ON t.tier_id = \(id)
                        WHERE m.member_id = \(memberID) AND m.tier_id <> t.tier_id
                        """, logger: logger)
                    tierID = id
                }
                let rows = try await connection.query(
                    """
                    UPDATE members AS m SET
                        card_number = CASE WHEN \(patch.cardNumber != nil) THEN \(patch.cardNumber ?? nil)::text ELSE m.card_number END,
                        phone = CASE WHEN \(patch.phone != nil) THEN \(patch.phone ?? nil)::text ELSE m.phone END,
                        email = CASE WHEN \(patch.email != nil) THEN \(patch.email ?? nil)::text ELSE m.email END,
                        given_name = CASE WHEN \(patch.givenName != nil) THEN \(patch.givenName ?? nil)::text ELSE m.given_name END,
                        family_name = CASE WHEN \(patch.familyName != nil) THEN \(patch.familyName ?? nil)::text ELSE m.family_name END,
                        birth_date = CASE WHEN \(patch.birthDate != nil) THEN \(patch.birthDate ?? nil)::date ELSE m.birth_date END,
                        tier_id = coalesce(\(tierID)::bigint, m.tier_id),
                        tags = coalesce(\(patch.tags)::text[], m.tags),
                        consents = m.consents || \(consentsPatch)::jsonb,
                        profile_version = m.profile_version + 1, ledger_version = m.ledger_version + 1, updated_at = now()
                    WHERE m.member_id = \(memberID)
                    RETURNING \(unescaped: Self.memberColumns)
                    """, logger: logger)
                guard let after = try await Self.first(rows) else { throw AdminStoreError.notFound("member \(memberID)") }
                let (changedBefore, changedAfter) = try before.changes(to: after)
                try await AuditLogStore.write(
                    AuditRecord(action: "member.update", resource: Self.resource(memberID), before: changedBefore, after: changedAfter),
                    context: audit, on: connection, logger: logger)
                return after
            }
        }
    }

    /// Blocks (`blocked` true) or unblocks a member. Already in that state: returned unchanged, nothing audited.
    public func setBlocked(memberID: Int64, _ blocked: Bool, audit: AuditContext) async throws -> AdminMember {
        let (from, to) = blocked ? ("active", "blocked") : ("blocked", "active")
        let logger = self.logger
        return try await client.transaction(logger: logger) { connection in
            let before = try await Self.lock(memberID: memberID, on: connection, logger: logger)
            guard !before.isErased else { throw AdminStoreError.conflict("member \(memberID) is erased") }
            guard before.status == from else { return before }
            let rows = try await connection.query(
                """
                UPDATE members AS m SET status = \(to), profile_version = m.profile_version + 1,
                    ledger_version = m.ledger_version + 1, updated_at = now()
                WHERE m.member_id = \(memberID)
                RETURNING \(unescaped: Self.memberColumns)
                """, logger: logger)
            guard let after = try await Self.first(rows) else { throw AdminStoreError.notFound("member \(memberID)") }
            try await AuditLogStore.write(
                AuditRecord(
                    action: blocked ? "member.block" : "member.unblock", resource: Self.resource(memberID),
                    before: .object(["status": .string(from)]), after: .object(["status": .string(to)])),
                context: audit, on: connection, logger: logger)
            return after
        }
    }

    /// Erases the member's personal data, irreversibly: identifiers, names and birth date become NULL, the status
    /// `erased`. The member id and the whole ledger stay. Earlier audit rows about the member are redacted, and the
    /// erasure's own row names the cleared fields, never their values. Already erased: returned unchanged.
    /// Erases the member's personal data. Returns the erased member and the card number and phone it had (nil
    /// when it had none, or was already erased), so the caller can remove what the cache keyed by them.
    public func erase(memberID: Int64, audit: AuditContext) async throws -> (member: AdminMember, cardNumber: String?, phone: String?) {
        let logger = self.logger
        return try await client.transaction(logger: logger) { connection in
            let before = try await Self.lock(memberID: memberID, on: connection, logger: logger)
            guard !before.isErased else { return (before, nil, nil) }
            var cardNumber: String?
            var phone: String?
            if case .object(let fields) = try before.representation() {
                if case .string(let value)? = fields["card_number"] { cardNumber = value }
                if case .string(let value)? = fields["phone"] { phone = value }
            }
            let rows = try await connection.query(
                """
                UPDATE members AS m SET status = 'erased', erased_at = now(), card_number = NULL, phone = NULL,
                    email = NULL, given_name = NULL, family_name = NULL, birth_date = NULL,
                    profile_version = m.profile_version + 1, ledger_version = m.ledger_version + 1, updated_at = now()
                WHERE m.member_id = \(memberID)
                RETURNING \(unescaped: Self.memberColumns)
                """, logger: logger)
            guard let after = try await Self.first(rows) else { throw AdminStoreError.notFound("member \(memberID)") }
            let resource = Self.resource(memberID)
            try await AuditLogStore.redact(keys: AdminMember.personalFields, resource: resource, on: connection, logger: logger)
            var cleared: [JSONValue] = []
            if case .object(let fields) = try before.representation() {
                cleared = AdminMember.personalFields.filter { (fields[$0] ?? .null) != .null }.map { .string($0) }
            }
            try await AuditLogStore.write(
                AuditRecord(
                    action: "member.erase", resource: resource, before: .object(["status": .string(before.status)]),
                    after: .object(["status": .string("erased"), "erased_fields": .array(cleared)])),
                context: audit, on: connection, logger: logger)
            return (after, cardNumber, phone)
        }
    }

    // MARK: Helpers

    /// Locks the member row for the rest of the transaction (the ledger functions take the same lock first).
    static func lock(memberID: Int64, on connection: PostgresConnection, logger: Logger) async throws -> AdminMember {
        let rows = try await connection.query(
            "SELECT \(unescaped: memberColumns) FROM members m WHERE m.member_id = \(memberID) FOR UPDATE OF m",
            logger: logger)
        guard let member = try await first(rows) else { throw AdminStoreError.notFound("member \(memberID)") }
        return member
    }

    static func tierID(code: String, on connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        let rows = try await connection.query("SELECT tier_id FROM tiers WHERE code = \(code)", logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        throw AdminStoreError.invalid(field: "tier_code", reason: "names no tier: \"\(code)\"")
    }

    static func first(_ rows: PostgresRowSequence) async throws -> AdminMember? {
        for try await row in rows.decode((String, Int64, Int64, String, Int64).self) {
            return AdminMember(row)
        }
        return nil
    }

    /// Unique and CHECK violations are the caller's mistake, not the server's: name the field.
    static func mappingConstraintErrors<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch let error as PSQLError {
            let constraint = error.serverInfo?[.constraintName] ?? ""
            switch PostgresErrorText.sqlState(error) {
            case "23505" where constraint.contains("card_number"):
                throw AdminStoreError.conflict("card number already in use by another member")
            case "23505" where constraint.contains("phone"):
                throw AdminStoreError.conflict("phone already in use by another member")
            case "23514":
                let field = ["card_number", "phone", "email", "given_name", "family_name"].first { constraint.contains($0) }
                throw AdminStoreError.invalid(field: field ?? "body", reason: "is not accepted (\(constraint))")
            case "22007", "22008":
                throw AdminStoreError.invalid(field: "birth_date", reason: "must be a date YYYY-MM-DD")
            default:
                throw error
            }
        }
    }
}
