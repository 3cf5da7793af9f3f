import Foundation
import Logging
import PostgresNIO

/// A new member's profile. Identifiers are optional; the tier defaults to the lowest rank.
public struct NewMember: Sendable, Equatable {
    public var cardNumber: String?
    public var phone: String?
    public var email: String?
    public var givenName: String?
    public var familyName: String?
    public var tierCode: String?

    public init(
        cardNumber: String? = nil, phone: String? = nil, email: String? = nil, givenName: String? = nil,
        familyName: String? = nil, tierCode: String? = nil
    ) {
        self.cardNumber = cardNumber
        self.phone = phone
        self.email = email
        self.givenName = givenName
        self.familyName = familyName
        self.tierCode = tierCode
    }
}

/// Members in PostgreSQL. Creating one also creates its ledger accounts (a trigger).
public struct MemberStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func create(_ member: NewMember) async throws -> Int64 {
        let rows = try await client.query(
            """
            INSERT INTO members (card_number, phone, email, given_name, family_name, tier_id)
            SELECT \(member.cardNumber), \(member.phone), \(member.email), \(member.givenName), \(member.familyName),
                   tier_id FROM tiers WHERE (\(member.tierCode)::text IS NULL OR code = \(member.tierCode))
            ORDER BY rank LIMIT 1
            RETURNING member_id
            """, logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        throw StoreError.notFound("tier '\(member.tierCode ?? "lowest")'")
    }
}
