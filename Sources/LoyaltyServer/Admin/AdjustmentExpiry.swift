import Foundation
import LoyaltyStore

/// When an adjustment's credit expires: `expires_at` absent follows the program (the rules' `expiry.days` from
/// now, as a checkout's lot does; never when it is 0 or no rules are loaded), a date-time is that instant, null
/// is never. Debits consume lots and make none, so they take no `expires_at`.
struct AdjustmentExpiry: Equatable {
    var expiresAt: Date?
    var expiresAfterDays: Int?

    static let never = AdjustmentExpiry(expiresAt: nil, expiresAfterDays: nil)

    static func read(_ body: JSONFields, delta: Int64, rules: CurrentRules?) throws(APIProblem) -> AdjustmentExpiry {
        let field = try body.string("expires_at")
        if delta < 0 {
            guard case .absent = field else {
                throw .invalidBody("field \"expires_at\" applies to credits only; a debit takes from the lots that expire first")
            }
            return .never
        }
        switch field {
        case .absent:
            let days = rules?.current.ruleSet.expiryDays ?? 0
            return days > 0 ? AdjustmentExpiry(expiresAt: nil, expiresAfterDays: days) : .never
        case .null:
            return .never
        case .value(let text):
            guard let instant = RFC3339.parse(text) else {
                throw .invalidBody("field \"expires_at\" must be an RFC 3339 date-time such as \"2026-06-01T00:00:00Z\", or null for never")
            }
            guard instant > Date() else {
                throw .invalidBody("field \"expires_at\" must be in the future (got \(text)); leave it out to follow the program's expiry")
            }
            return AdjustmentExpiry(expiresAt: instant, expiresAfterDays: nil)
        }
    }
}
