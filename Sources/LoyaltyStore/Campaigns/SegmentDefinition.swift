import Foundation
import PostgresNIO

/// A saved member selection over profile and purchase history (the RFM dimensions and more), validated field by
/// field and compiled to parameterised SQL: user input only ever travels as bound values, never as SQL text.
/// Every condition given must hold (AND); a definition with none selects every active member.
public struct SegmentDefinition: Sendable, Equatable, Codable {
    public struct Purchases: Sendable, Equatable, Codable {
        /// The window, ending now.
        public var windowDays: Int
        public var minCount: Int?
        public var minSpendMinor: Int64?

        public init(windowDays: Int, minCount: Int? = nil, minSpendMinor: Int64? = nil) {
            self.windowDays = windowDays
            self.minCount = minCount
            self.minSpendMinor = minSpendMinor
        }

        enum CodingKeys: String, CodingKey {
            case windowDays = "window_days", minCount = "min_count", minSpendMinor = "min_spend_minor"
        }
    }

    public var tiers: [String]?
    /// Members with at least one of these tags.
    public var tagsAny: [String]?
    /// A channel the member consented to (email, sms, push).
    public var consent: String?
    public var lastPurchaseAfter: Date?
    public var lastPurchaseBefore: Date?
    public var purchases: Purchases?
    /// 1-12.
    public var birthdayMonth: Int?

    public init(tiers: [String]? = nil, tagsAny: [String]? = nil, consent: String? = nil, lastPurchaseAfter: Date? = nil,
                lastPurchaseBefore: Date? = nil, purchases: Purchases? = nil, birthdayMonth: Int? = nil) {
        self.tiers = tiers
        self.tagsAny = tagsAny
        self.consent = consent
        self.lastPurchaseAfter = lastPurchaseAfter
        self.lastPurchaseBefore = lastPurchaseBefore
        self.purchases = purchases
        self.birthdayMonth = birthdayMonth
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case tiers, tagsAny = "tags_any", consent, lastPurchaseAfter = "last_purchase_after"
        case lastPurchaseBefore = "last_purchase_before", purchases, birthdayMonth = "birthday_month"
    }

    static let consentChannels: Set<String> = ["email", "sms", "push"]

    /// Parses a definition from JSON, refusing unknown fields (naming them) and values out of range.
    public static func parse(_ data: Data) throws(SegmentError) -> SegmentDefinition {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .invalid(field: "definition", message: "must be a JSON object")
        }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        for key in object.keys.sorted() where !known.contains(key) {
            throw .invalid(field: key, message: "unknown segment field; use one of \(known.sorted().joined(separator: ", "))")
        }
        if let purchases = object["purchases"] as? [String: Any] {
            for key in purchases.keys.sorted() where !["window_days", "min_count", "min_spend_minor"].contains(key) {
                throw .invalid(field: "purchases.\(key)", message: "unknown field; use window_days, min_count, min_spend_minor")
            }
        }
        let definition: SegmentDefinition
        do { definition = try jsonDecoder().decode(SegmentDefinition.self, from: data) } catch {
            throw .invalid(field: "definition", message: "wrong type: \(error)")
        }
        try definition.validate()
        return definition
    }

    /// The decoder for definitions: strict RFC 3339 dates (see `RFC3339`).
    public static func jsonDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = RFC3339.parse(text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an RFC 3339 timestamp"))
            }
            return date
        }
        return decoder
    }

    public func validate() throws(SegmentError) {
        func codes(_ values: [String]?, _ field: String) throws(SegmentError) {
            guard let values else { return }
            guard !values.isEmpty, values.count <= 50 else { throw .invalid(field: field, message: "give 1-50 values") }
            // Codes are printable text: a control character (NUL above all, which PostgreSQL text cannot hold) is a
            // client mistake, not a server error.
            for value in values where !PrintableText.isAcceptable(value, length: 1...64) {
                throw .invalid(field: field, message: "values are 1-64 printable characters")
            }
        }
        try codes(tiers, "tiers")
        try codes(tagsAny, "tags_any")
        if let consent, !Self.consentChannels.contains(consent) {
            throw .invalid(field: "consent", message: "one of email, sms, push")
        }
        if let after = lastPurchaseAfter, let before = lastPurchaseBefore, after >= before {
            throw .invalid(field: "last_purchase_after", message: "must be before last_purchase_before")
        }
        if let purchases {
            guard (1...3_660).contains(purchases.windowDays) else { throw .invalid(field: "purchases.window_days", message: "1-3660") }
            if let count = purchases.minCount, count < 0 { throw .invalid(field: "purchases.min_count", message: "must not be negative") }
            if let spend = purchases.minSpendMinor, spend < 0 { throw .invalid(field: "purchases.min_spend_minor", message: "must not be negative") }
        }
        if let month = birthdayMonth, !(1...12).contains(month) { throw .invalid(field: "birthday_month", message: "1-12") }
    }

    /// `SELECT m.member_id FROM members m WHERE …` with every value bound; given a segment id, it is bound first
    /// and selected too (`SELECT $1, m.member_id …`), ready for `INSERT INTO segment_members`.
    public func compiled(segmentID: Int64? = nil) throws -> PostgresQuery {
        var bindings = PostgresBindings()
        var conditions = ["m.status = 'active'"]
        var columns = "m.member_id"
        if let segmentID {
            try bindings.append(segmentID)
            columns = "$1::bigint, m.member_id"
        }
        func bind<Value: PostgresEncodable & Sendable>(_ value: Value) throws -> String {
            try bindings.append(value)
            return "$\(bindings.count)"
        }
        if let tiers { conditions.append("m.tier_id IN (SELECT tier_id FROM tiers WHERE code = ANY(\(try bind(tiers))))") }
        if let tagsAny { conditions.append("m.tags && \(try bind(tagsAny))::text[]") }
        if let consent { conditions.append("coalesce((m.consents ->> \(try bind(consent)))::boolean, false)") }
        let lastPurchase = "(SELECT max(e.occurred_at) FROM journal_entries e WHERE e.member_id = m.member_id AND e.kind = 'accrual' AND e.spend_minor > 0)"
        if let after = lastPurchaseAfter { conditions.append("\(lastPurchase) > \(try bind(after))") }
        if let before = lastPurchaseBefore { conditions.append("coalesce(\(lastPurchase) < \(try bind(before)), true)") }
        if let purchases {
            let window = "e.member_id = m.member_id AND e.kind = 'accrual' AND e.spend_minor > 0 AND e.occurred_at > now() - make_interval(days => \(try bind(Int32(purchases.windowDays))))"
            if let count = purchases.minCount {
                conditions.append("(SELECT count(*) FROM journal_entries e WHERE \(window)) >= \(try bind(Int64(count)))")
            }
            if let spend = purchases.minSpendMinor {
                conditions.append("(SELECT coalesce(sum(e.spend_minor), 0) FROM journal_entries e WHERE \(window)) >= \(try bind(spend))")
            }
        }
        if let month = birthdayMonth { conditions.append("extract(month FROM m.birth_date) = \(try bind(Int32(month)))") }
        return PostgresQuery(unsafeSQL: "SELECT \(columns) FROM members m WHERE " + conditions.joined(separator: " AND "), binds: bindings)
    }
}

public enum SegmentError: Error, Equatable, CustomStringConvertible {
    case invalid(field: String, message: String)

    public var description: String {
        switch self {
        case .invalid(let field, let message): "\(field): \(message)"
        }
    }
}
