import Foundation
import LoyaltyCore
import LoyaltyStore

/// Turns segment and campaign request bodies into store values. Like `MemberInput`, every field is checked
/// before the database sees it, so a bad value is a 400 `invalid_body` naming the field.
enum CampaignInput {
    static let segmentFields: Set<String> = ["name", "definition"]
    static let commonFields: Set<String> = ["kind", "name", "starts_at", "ends_at"]
    static let multiplierFields: Set<String> = ["multiplier_bp", "extra_rate_bp", "categories", "skus", "tier_codes", "segment_id"]
    static let bonusFields: Set<String> = ["segment_id", "bonus_points", "bonus_expires_days", "budget_points"]
    static let maximumNameLength = 100
    static let expiryDays: ClosedRange<Int64> = 1...3_650
    /// Points per member and occasion. The cap keeps batch arithmetic (members × points) far from overflow and a
    /// typo from paying millions.
    static let bonusPoints: ClosedRange<Int64> = 1...10_000_000
    static let maximumBudgetPoints: Int64 = 1_000_000_000_000

    /// A new campaign of any kind, always created as a draft.
    typealias Campaign = CampaignSpec

    // MARK: Segments

    /// `POST /v1/segments`: `name` and `definition`.
    static func segment(from body: JSONFields) throws(APIProblem) -> (name: String, definition: SegmentDefinition) {
        try body.allowOnly(segmentFields)
        let name = try self.name(body.required("name", body.string))
        return (name, try definition(from: body))
    }

    /// `POST /v1/segments/preview`: `definition` only.
    static func preview(from body: JSONFields) throws(APIProblem) -> SegmentDefinition {
        try body.allowOnly(["definition"])
        return try definition(from: body)
    }

    /// The `definition` field through `SegmentDefinition.parse`; its refusals name the field inside the
    /// definition (`definition.teirs`, `definition.purchases.window_days`).
    static func definition(from body: JSONFields) throws(APIProblem) -> SegmentDefinition {
        guard let value = body.fields["definition"], value != .null else {
            throw .invalidBody("field \"definition\" is required")
        }
        let data: Data
        do { data = try JSONEncoder().encode(value) } catch { throw .invalidBody("field \"definition\" must be an object") }
        do {
            return try SegmentDefinition.parse(data)
        } catch {
            guard case .invalid(let field, let message) = error else { throw .invalidBody("field \"definition\" is not accepted") }
            if field == "definition" {
                if case .object(let fields) = value, let detail = decodingProblem(data, definition: fields) {
                    throw .invalidBody(detail)
                }
                throw .invalidBody("field \"definition\" \(message)")
            }
            throw .invalidBody("field \"definition.\(field)\": \(message)")
        }
    }

    /// What each definition field must be, for messages that say what was expected.
    static let definitionFieldShapes: [String: String] = [
        "tiers": "an array of tier codes",
        "tags_any": "an array of tags",
        "consent": "one of \"email\", \"sms\", \"push\"",
        "last_purchase_after": "an RFC 3339 date-time such as \"2025-06-01T00:00:00Z\"",
        "last_purchase_before": "an RFC 3339 date-time such as \"2025-06-01T00:00:00Z\"",
        "purchases": "an object with window_days (required), min_count and min_spend_minor",
        "purchases.window_days": "an integer from 1 to 3660",
        "purchases.min_count": "an integer",
        "purchases.min_spend_minor": "an integer (minor units)",
        "birthday_month": "an integer from 1 to 12",
    ]

    /// Why decoding a definition fails, naming the field: a required field missing, a date that is not RFC 3339
    /// (with the value given), or a value of the wrong shape (with the shape expected). Nil when it decodes.
    static func decodingProblem(_ data: Data, definition: [String: JSONValue]) -> String? {
        func expected(_ path: String) -> String {
            definitionFieldShapes[path].map { "; expected \($0)" } ?? ""
        }
        func given(_ path: [String]) -> JSONValue? {
            var value: JSONValue? = .object(definition)
            for key in path {
                guard case .object(let fields)? = value else { return nil }
                value = fields[key]
            }
            return value
        }
        do {
            _ = try SegmentDefinition.jsonDecoder().decode(SegmentDefinition.self, from: data)
            return nil
        } catch let DecodingError.keyNotFound(key, context) {
            let path = (context.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
            let parent = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "field \"definition.\(path)\" is missing" + (parent.isEmpty ? "" : "; it is required when \"\(parent)\" is given")
                + expected(path)
        } catch let DecodingError.valueNotFound(_, context) {
            let path = context.codingPath.filter { $0.intValue == nil }.map(\.stringValue)
            // Optional fields decode null as absent, so this is a required one.
            return "field \"definition.\(path.joined(separator: "."))\" is null; give \(definitionFieldShapes[path.joined(separator: ".")] ?? "a value")"
        } catch let DecodingError.dataCorrupted(context) {
            let path = context.codingPath.filter { $0.intValue == nil }.map(\.stringValue)
            let name = path.joined(separator: ".")
            guard !name.isEmpty else { return nil }
            if case .string(let text)? = given(path), name.hasPrefix("last_purchase_") {
                return "field \"definition.\(name)\" is not a valid date-time: \(String(reflecting: String(text.prefix(64))))" + expected(name)
            }
            return "field \"definition.\(name)\" is not valid" + expected(name)
        } catch let DecodingError.typeMismatch(_, context) {
            let path = context.codingPath.filter { $0.intValue == nil }.map(\.stringValue)
            let name = path.joined(separator: ".")
            guard !name.isEmpty else { return nil }
            return "field \"definition.\(name)\" has the wrong type" + expected(name)
        } catch {
            return nil
        }
    }

    // MARK: Campaigns

    /// `POST /v1/campaigns`. `kind` decides which fields belong; a field of the other kind is refused by name.
    static func campaign(from body: JSONFields) throws(APIProblem) -> Campaign {
        try body.allowOnly(commonFields.union(multiplierFields).union(bonusFields))
        let kind = try body.required("kind", body.string)
        let own: Set<String>
        switch kind {
        case "multiplier": own = multiplierFields
        case "bonus", "birthday", "welcome": own = bonusFields
        default: throw .invalidBody("field \"kind\" must be \"multiplier\", \"bonus\", \"birthday\" or \"welcome\"")
        }
        if let other = body.fields.keys.filter({ !commonFields.contains($0) && !own.contains($0) }).sorted().first {
            throw .invalidBody("field \"\(other)\" is not for \(kind) campaigns")
        }
        let name = try self.name(body.required("name", body.string))
        let startsAt = try timestamp(body, "starts_at")
        let endsAt = try timestamp(body, "ends_at")
        guard endsAt > startsAt else { throw .invalidBody("field \"ends_at\" must be after starts_at") }
        let segmentID = try positive(body, "segment_id", required: kind == "bonus")

        if let bonusKind = BonusKind(rawValue: kind) {
            let points = try body.required("bonus_points", body.integer)
            guard bonusPoints.contains(points) else {
                throw .invalidBody("field \"bonus_points\" must be \(bonusPoints.lowerBound)-\(bonusPoints.upperBound)")
            }
            let days = try body.required("bonus_expires_days", body.integer)
            guard expiryDays.contains(days) else {
                throw .invalidBody("field \"bonus_expires_days\" must be \(expiryDays.lowerBound)-\(expiryDays.upperBound)")
            }
            let budget = try body.integer("budget_points").value
            if let budget, budget < 0 { throw .invalidBody("field \"budget_points\" must not be negative") }
            if let budget, budget > maximumBudgetPoints {
                throw .invalidBody("field \"budget_points\" must be at most \(maximumBudgetPoints)")
            }
            return .bonus(BonusCampaignDraft(
                kind: bonusKind, name: name, startsAt: startsAt, endsAt: endsAt, segmentID: segmentID, bonusPoints: points,
                expiresDays: Int(days), budgetPoints: budget))
        }

        let multiplier = try body.integer("multiplier_bp").value
        let extra = try body.integer("extra_rate_bp").value
        let effect: CampaignMultiplier.Effect
        switch (multiplier, extra) {
        case (let bp?, nil): effect = .multiplier(bp: bp)
        case (nil, let bp?): effect = .extraRate(bp: bp)
        default: throw .invalidBody("give exactly one of the fields \"multiplier_bp\", \"extra_rate_bp\"")
        }
        do {
            let campaign = try CampaignMultiplier(
                campaignID: 0, name: name, startsAt: startsAt, endsAt: endsAt, effect: effect,
                categories: try codes(body, "categories"), skus: try codes(body, "skus"), tierCodes: try codes(body, "tier_codes"),
                requiresSegment: segmentID != nil)
            return .multiplier(campaign, segmentID: segmentID)
        } catch let error as APIProblem {
            throw error
        } catch let error as CampaignError {
            throw problem(error)
        } catch {
            throw .invalidBody("the campaign is not accepted")
        }
    }

    /// `PATCH /v1/campaigns/{id}`: the fields given replace the draft's, `null` clears (a required field cleared is
    /// refused as on create), and the result is checked exactly as a new campaign would be. `kind` cannot change.
    static func patched(_ draft: AdminCampaign, with patch: JSONFields) throws(APIProblem) -> Campaign {
        let patchable = commonFields.union(multiplierFields).union(bonusFields).subtracting(["kind"])
        if patch.fields["kind"] != nil { throw .invalidBody("field \"kind\" cannot change; create a new campaign") }
        try patch.allowOnly(patchable)
        guard !patch.fields.isEmpty else { throw .invalidBody("the body names no field to change") }
        guard draft.kind == "multiplier" || BonusKind(rawValue: draft.kind) != nil, case .object(let current) = draft.representation else {
            throw APIProblem(.conflict, "a \(draft.kind) campaign cannot be changed through the API")
        }
        let own = draft.kind == "multiplier" ? multiplierFields : bonusFields
        var merged: [String: JSONValue] = ["kind": .string(draft.kind)]
        for key in commonFields.union(own).subtracting(["kind"]) {
            if let value = current[key], value != .null { merged[key] = value }
        }
        for (key, value) in patch.fields { merged[key] = value == .null ? nil : value }
        return try campaign(from: JSONFields(fields: merged))
    }

    /// The core's refusal as a 400 naming the field (the core's own text names the campaign id, 0 here).
    static func problem(_ error: CampaignError) -> APIProblem {
        switch error {
        case .invalidName: .invalidBody("field \"name\" must be 1-\(maximumNameLength) characters")
        case .emptyWindow: .invalidBody("field \"ends_at\" must be after starts_at")
        case .multiplierOutOfRange(_, let bp):
            .invalidBody("field \"multiplier_bp\" must be \(RuleLimits.bpPerUnit)-\(RuleLimits.maxMultiplierBp) (×1 to ×\(RuleLimits.maxMultiplierBp / RuleLimits.bpPerUnit)), got \(bp)")
        case .extraRateOutOfRange(_, let bp):
            .invalidBody("field \"extra_rate_bp\" must be 0-\(RuleLimits.maxCampaignExtraRateBp), got \(bp)")
        case .invalidRestriction(_, let field):
            .invalidBody("field \"\(field)\" must be absent or a non-empty array of codes (1-\(RuleLimits.maxCodeLength) printable ASCII characters, no spaces)")
        }
    }

    // MARK: Fields

    static func name(_ value: String) throws(APIProblem) -> String {
        // Checked as sent (the document's maxLength), then stored without surrounding spaces.
        _ = try TextInput.check(value, field: "name", length: 1...maximumNameLength)
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .invalidBody("field \"name\" must not be blank") }
        return trimmed
    }

    /// An RFC 3339 timestamp with a zone (`2025-06-01T00:00:00Z`, fractional seconds allowed).
    static func timestamp(_ body: JSONFields, _ field: String) throws(APIProblem) -> Date {
        let text = try body.required(field, body.string)
        if let date = RFC3339.parse(text) { return date }
        throw .invalidBody("field \"\(field)\" must be a timestamp like 2025-06-01T00:00:00Z")
    }

    static func positive(_ body: JSONFields, _ field: String, required: Bool) throws(APIProblem) -> Int64? {
        let value = required ? try body.required(field, body.integer) : try body.integer(field).value
        if let value, value <= 0 { throw .invalidBody("field \"\(field)\" must be a positive integer") }
        return value
    }

    /// nil (no restriction) when absent or null; otherwise the set, checked by the core.
    static func codes(_ body: JSONFields, _ field: String) throws(APIProblem) -> Set<String>? {
        try body.strings(field).value.map(Set.init)
    }
}
