/// Free text from request bodies (names, tags, reasons), checked the way the OpenAPI document and PostgreSQL
/// count it: length in Unicode scalars (JSON Schema's `maxLength` and PostgreSQL's `length()` count code points;
/// Swift's `count` counts grapheme clusters, so a name with combining marks could pass here and fail a CHECK in
/// the database as a 500), and no control characters (PostgreSQL text cannot hold NUL; a tab in a name is a
/// mistake).
enum TextInput {
    static func isAcceptable(_ value: String, length: ClosedRange<Int>) -> Bool {
        length.contains(value.unicodeScalars.count)
            && !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
    }

    /// `value` if acceptable, else 400 `invalid_body` naming `field`.
    static func check(_ value: String, field: String, length: ClosedRange<Int>) throws(APIProblem) -> String {
        guard isAcceptable(value, length: length) else {
            throw .invalidBody("field \"\(field)\" must be \(length.lowerBound)-\(length.upperBound) characters without control characters")
        }
        return value
    }
}
