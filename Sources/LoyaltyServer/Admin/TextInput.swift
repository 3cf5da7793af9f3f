import LoyaltyStore

/// `PrintableText` for request bodies: a refusal is a 400 `invalid_body` naming the field.
enum TextInput {
    static func isAcceptable(_ value: String, length: ClosedRange<Int>) -> Bool {
        PrintableText.isAcceptable(value, length: length)
    }

    /// `value` if acceptable, else 400 `invalid_body` naming `field`.
    static func check(_ value: String, field: String, length: ClosedRange<Int>) throws(APIProblem) -> String {
        guard isAcceptable(value, length: length) else {
            throw .invalidBody("field \"\(field)\" must be \(length.lowerBound)-\(length.upperBound) characters without control characters")
        }
        return value
    }
}
