/// Free text from clients (names, tags, codes, reasons), checked the way the OpenAPI document and PostgreSQL count
/// it: length in Unicode scalars (JSON Schema's `maxLength` and PostgreSQL's `length()` count code points; Swift's
/// `count` counts grapheme clusters, so a name with combining marks could pass here and fail a CHECK as a 500), and
/// no control characters (PostgreSQL text cannot hold NUL; a tab in a name is a mistake).
public enum PrintableText {
    public static func isAcceptable(_ value: String, length: ClosedRange<Int>) -> Bool {
        length.contains(value.unicodeScalars.count)
            && !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
    }
}
