import Foundation
import LoyaltyStore

/// Turns member request bodies into store values, checking every field the way the database would, so a bad
/// value is a 400 naming the field rather than a constraint error.
enum MemberInput {
    static let profileFields: Set<String> = [
        "card_number", "phone", "email", "given_name", "family_name", "birth_date", "tier_code", "tags", "consents",
    ]
    static let consentFields: Set<String> = ["email", "sms", "push"]
    static let maximumTags = 50
    static let maximumTagLength = 64
    static let maximumNameLength = 100
    static let maximumEmailLength = 254

    /// The body of `POST /v1/members`. Null and absent mean the same here.
    static func profile(from body: JSONFields) throws(APIProblem) -> MemberProfile {
        try body.allowOnly(profileFields)
        var profile = MemberProfile()
        profile.cardNumber = try valid(body.string("card_number"), cardNumber).value
        profile.phone = try valid(body.string("phone"), phone).value
        profile.email = try valid(body.string("email"), email).value
        profile.givenName = try valid(body.string("given_name")) { (value) throws(APIProblem) in try name(value, field: "given_name") }.value
        profile.familyName = try valid(body.string("family_name")) { (value) throws(APIProblem) in try name(value, field: "family_name") }.value
        profile.birthDate = try valid(body.string("birth_date"), birthDate).value
        profile.tierCode = try valid(body.string("tier_code"), tierCode).value
        profile.tags = try tags(body.strings("tags").value ?? [])
        if let consents = try body.object("consents").value {
            let changes = try self.consents(consents)
            profile.consents = MemberConsents(
                email: changes["email"] ?? false, sms: changes["sms"] ?? false, push: changes["push"] ?? false)
        }
        return profile
    }

    /// The body of `PATCH /v1/members/{id}`: null clears a nullable field; tier and tags cannot be null.
    static func patch(from body: JSONFields) throws(APIProblem) -> MemberProfilePatch {
        try body.allowOnly(profileFields)
        var patch = MemberProfilePatch()
        patch.cardNumber = try valid(body.string("card_number"), cardNumber).patch
        patch.phone = try valid(body.string("phone"), phone).patch
        patch.email = try valid(body.string("email"), email).patch
        patch.givenName = try valid(body.string("given_name")) { (value) throws(APIProblem) in try name(value, field: "given_name") }.patch
        patch.familyName = try valid(body.string("family_name")) { (value) throws(APIProblem) in try name(value, field: "family_name") }.patch
        patch.birthDate = try valid(body.string("birth_date"), birthDate).patch
        switch try body.string("tier_code") {
        case .absent: break
        case .null: throw .invalidBody("field \"tier_code\" must be a string")
        case .value(let code): patch.tierCode = try tierCode(code)
        }
        switch try body.strings("tags") {
        case .absent: break
        case .null: throw .invalidBody("field \"tags\" must be an array of strings")
        case .value(let values): patch.tags = try tags(values)
        }
        switch try body.object("consents") {
        case .absent: break
        case .null: throw .invalidBody("field \"consents\" must be an object")
        case .value(let consents): patch.consents = try self.consents(consents)
        }
        guard !patch.isEmpty else { throw .invalidBody("the body names no field to change") }
        return patch
    }

    /// The consents named in `object`, each true or false.
    static func consents(_ object: JSONFields) throws(APIProblem) -> [String: Bool] {
        try object.allowOnly(consentFields)
        var values: [String: Bool] = [:]
        for field in consentFields.sorted() {
            switch try object.bool(field) {
            case .absent: break
            case .null: throw .invalidBody("field \"\(object.name(field))\" must be true or false")
            case .value(let value): values[field] = value
            }
        }
        return values
    }

    /// `field` with its value (if any) checked by `check`.
    static func valid(
        _ field: FieldValue<String>, _ check: (String) throws(APIProblem) -> String
    ) throws(APIProblem) -> FieldValue<String> {
        guard case .value(let value) = field else { return field }
        return .value(try check(value))
    }

    // MARK: Fields (the same rules as the CHECK constraints of the members table)

    static func cardNumber(_ value: String) throws(APIProblem) -> String {
        guard (4...32).contains(value.utf8.count), value.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") }) else {
            throw .invalidBody("field \"card_number\" must be 4-32 of 0-9 A-Z a-z -")
        }
        return value
    }

    static func phone(_ value: String) throws(APIProblem) -> String {
        let digits = value.utf8.dropFirst()
        guard value.hasPrefix("+"), (6...15).contains(digits.count), digits.allSatisfy({ isDigit($0) }) else {
            throw .invalidBody("field \"phone\" must be E.164: + and 6-15 digits")
        }
        return value
    }

    static func email(_ value: String) throws(APIProblem) -> String {
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        guard value.utf8.count <= maximumEmailLength, parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
            !value.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control })
        else {
            throw .invalidBody("field \"email\" must be an address like name@example.com, at most \(maximumEmailLength) bytes")
        }
        return value
    }

    static func name(_ value: String, field: String) throws(APIProblem) -> String {
        try TextInput.check(value, field: field, length: 1...maximumNameLength)
    }

    /// `YYYY-MM-DD`, a real calendar date from 1900 up to today (UTC).
    static func birthDate(_ value: String) throws(APIProblem) -> String {
        let bytes = Array(value.utf8)
        let refusal = APIProblem.invalidBody("field \"birth_date\" must be a past date YYYY-MM-DD")
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            let year = Int(value.prefix(4)), let month = Int(value.dropFirst(5).prefix(2)), let day = Int(value.suffix(2)),
            bytes.enumerated().allSatisfy({ $0.offset == 4 || $0.offset == 7 || isDigit($0.element) })
        else { throw refusal }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard year >= 1900, (1...12).contains(month), (1...monthDays[month - 1]).contains(day) else { throw refusal }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let today = calendar.dateComponents([.year, .month, .day], from: Date())
        let todayText = String(format: "%04d-%02d-%02d", today.year ?? 0, today.month ?? 0, today.day ?? 0)
        guard value <= todayText else { throw refusal }
        return value
    }

    static func tierCode(_ value: String) throws(APIProblem) -> String {
        let bytes = Array(value.utf8)
        guard let first = bytes.first, (1...32).contains(bytes.count), first >= UInt8(ascii: "a"), first <= UInt8(ascii: "z"),
            bytes.allSatisfy({ ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || isDigit($0) || $0 == UInt8(ascii: "_") })
        else { throw .invalidBody("field \"tier_code\" names no tier: \"\(value.prefix(40))\"") }
        return value
    }

    /// At most 50 tags of 1-64 characters; duplicates are dropped, the first occurrence's order kept.
    static func tags(_ values: [String]) throws(APIProblem) -> [String] {
        guard values.count <= maximumTags else { throw .invalidBody("field \"tags\" holds at most \(maximumTags) tags") }
        var seen: Set<String> = []
        var tags: [String] = []
        for value in values {
            guard TextInput.isAcceptable(value, length: 1...maximumTagLength) else {
                throw .invalidBody("field \"tags\" holds tags of 1-\(maximumTagLength) characters without control characters")
            }
            if seen.insert(value).inserted { tags.append(value) }
        }
        return tags
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }
}
