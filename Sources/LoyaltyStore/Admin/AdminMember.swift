import Foundation

/// A member as the admin API shows it, read in the same statement as the write that produced it.
///
/// `jsonText` is the API's JSON object as PostgreSQL built it (snake_case fields, nulls included): a read sends
/// it as it is, without decoding and encoding it again (that was most of a member read's CPU). The other fields
/// are the parts of it the callers decide on, read as columns, plus the ledger version the member cache compares.
public struct AdminMember: Sendable, Equatable {
    public var memberID: Int64
    public var status: String
    /// The profile version clients send back in If-Match.
    public var version: Int64
    /// The member's `ledger_version`: admin writes bump it too, so the member cache drops older snapshots.
    public var ledgerVersion: Int64
    public var jsonText: String

    public var isErased: Bool { status == "erased" }

    /// Fields holding personal data: cleared by erasure, redacted from the member's audit rows.
    public static let personalFields = ["card_number", "phone", "email", "given_name", "family_name", "birth_date"]

    /// The columns of `AdminMemberStore.memberColumns`: JSON text, ledger version, member id, status, profile version.
    init(_ row: (String, Int64, Int64, String, Int64)) {
        (jsonText, ledgerVersion, memberID, status, version) = row
    }

    /// The JSON object decoded, for what inspects or diffs fields (audit rows of writes).
    public func representation() throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(jsonText.utf8))
    }

    /// The fields of `representation` that differ from `other`'s, as (before, after) objects holding only those
    /// fields. Bookkeeping fields (version, timestamps) are left out.
    public func changes(to other: AdminMember) throws -> (before: JSONValue, after: JSONValue) {
        let (mine, theirs) = (try representation(), try other.representation())
        guard case .object(let old) = mine, case .object(let new) = theirs else { return (mine, theirs) }
        let ignored: Set<String> = ["version", "updated_at", "erased_at", "enrolled_at"]
        var before: [String: JSONValue] = [:]
        var after: [String: JSONValue] = [:]
        for key in Set(old.keys).union(new.keys) where !ignored.contains(key) && old[key] != new[key] {
            before[key] = old[key] ?? .null
            after[key] = new[key] ?? .null
        }
        return (.object(before), .object(after))
    }
}

/// Marketing consents; absent ones are false.
public struct MemberConsents: Sendable, Equatable, Codable {
    public var email: Bool
    public var sms: Bool
    public var push: Bool

    public init(email: Bool = false, sms: Bool = false, push: Bool = false) {
        self.email = email
        self.sms = sms
        self.push = push
    }
}

/// A new member's profile, already validated by the caller (the database checks again).
public struct MemberProfile: Sendable, Equatable {
    public var cardNumber: String?
    public var phone: String?
    public var email: String?
    public var givenName: String?
    public var familyName: String?
    /// `YYYY-MM-DD`.
    public var birthDate: String?
    /// nil: the lowest-ranked tier.
    public var tierCode: String?
    public var tags: [String]
    public var consents: MemberConsents

    public init(
        cardNumber: String? = nil, phone: String? = nil, email: String? = nil, givenName: String? = nil,
        familyName: String? = nil, birthDate: String? = nil, tierCode: String? = nil, tags: [String] = [],
        consents: MemberConsents = MemberConsents()
    ) {
        self.cardNumber = cardNumber
        self.phone = phone
        self.email = email
        self.givenName = givenName
        self.familyName = familyName
        self.birthDate = birthDate
        self.tierCode = tierCode
        self.tags = tags
        self.consents = consents
    }
}

/// A partial update. For the nullable fields: nil leaves the field alone, `.some(nil)` clears it.
public struct MemberProfilePatch: Sendable, Equatable {
    public var cardNumber: String??
    public var phone: String??
    public var email: String??
    public var givenName: String??
    public var familyName: String??
    public var birthDate: String??
    public var tierCode: String?
    public var tags: [String]?
    /// Only the consents named here change.
    public var consents: [String: Bool]

    public init() {
        self.consents = [:]
    }

    public var isEmpty: Bool { self == MemberProfilePatch() }
}

/// How a search finds members: exactly one identifier.
public enum MemberLookup: Sendable, Equatable {
    case card(String)
    case phone(String)
    /// Case-insensitive.
    case email(String)
}

/// The database answered in a shape this build does not understand (are the migrations current?).
struct UnexpectedReply: Error, CustomStringConvertible {
    let description: String
}
