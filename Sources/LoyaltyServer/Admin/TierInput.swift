import LoyaltyStore

/// Tier request bodies. Types and field names are checked here; value ranges by `TierStore` (the tiers table's
/// CHECK constraints, with the API's field names), so both paths refuse the same values the same way.
enum TierInput {
    static let createFields: Set<String> = [
        "code", "name", "rank", "qualification_spend_minor", "qualification_window_days", "earn_rate_override_bp",
    ]
    static let patchFields = createFields.subtracting(["code"])

    /// The body of `POST /v1/tiers`; `earn_rate_override_bp` may be absent or null (the rules' rate applies).
    static func tier(from body: JSONFields) throws(APIProblem) -> Tier {
        try body.allowOnly(createFields)
        return Tier(
            code: try body.required("code", body.string), name: try body.required("name", body.string),
            rank: try int(body.required("rank", body.integer), "rank"),
            qualificationSpendMinor: try body.required("qualification_spend_minor", body.integer),
            qualificationWindowDays: try int(body.required("qualification_window_days", body.integer), "qualification_window_days"),
            earnRateOverrideBp: try body.integer("earn_rate_override_bp").value.map { (value) throws(APIProblem) in
                try int(value, "earn_rate_override_bp")
            })
    }

    /// The body of `PATCH /v1/tiers/{code}` applied to `tier`: the fields given replace the tier's; null clears
    /// `earn_rate_override_bp` and is refused elsewhere.
    static func patched(_ tier: Tier, with body: JSONFields) throws(APIProblem) -> Tier {
        if body.fields["code"] != nil { throw .invalidBody("field \"code\" cannot change; create a new tier instead") }
        try body.allowOnly(patchFields)
        guard !body.fields.isEmpty else { throw .invalidBody("the body names no field to change") }
        var tier = tier
        if let name = try nonNull(body.string("name"), "name", "a string") { tier.name = name }
        if let rank = try nonNull(body.integer("rank"), "rank", "an integer") { tier.rank = try int(rank, "rank") }
        if let spend = try nonNull(body.integer("qualification_spend_minor"), "qualification_spend_minor", "an integer") {
            tier.qualificationSpendMinor = spend
        }
        if let days = try nonNull(body.integer("qualification_window_days"), "qualification_window_days", "an integer") {
            tier.qualificationWindowDays = try int(days, "qualification_window_days")
        }
        switch try body.integer("earn_rate_override_bp") {
        case .absent: break
        case .null: tier.earnRateOverrideBp = nil
        case .value(let rate): tier.earnRateOverrideBp = try int(rate, "earn_rate_override_bp")
        }
        return tier
    }

    /// The `{code}` of the path.
    static func code(_ context: AdminRequestContext) throws(APIProblem) -> String {
        guard let code = context.parameters.get("code"), TierStore.isValidCode(code) else {
            throw .invalidParameter("path parameter \"code\" must be a tier code: 1-32 of a-z 0-9 _ starting with a letter")
        }
        return code
    }

    private static func nonNull<Value>(_ field: FieldValue<Value>, _ name: String, _ type: String) throws(APIProblem) -> Value? {
        if case .null = field { throw .invalidBody("field \"\(name)\" must be \(type)") }
        return field.value
    }

    /// Int32 range: the columns are `integer`; the store checks the narrower ranges.
    private static func int(_ value: Int64, _ name: String) throws(APIProblem) -> Int {
        guard let narrow = Int32(exactly: value) else { throw .invalidBody("field \"\(name)\" is out of range") }
        return Int(narrow)
    }
}
