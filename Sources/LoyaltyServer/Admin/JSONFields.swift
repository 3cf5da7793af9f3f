import LoyaltyStore

/// A field that may be absent, explicitly null, or set. PATCH tells the first two apart; create does not.
enum FieldValue<Value: Sendable>: Sendable {
    case absent
    case null
    case value(Value)

    /// The value, with absent and null both nil.
    var value: Value? {
        if case .value(let value) = self { return value }
        return nil
    }

    /// nil when absent, `.some(nil)` when null: the shape of a nullable patch field.
    var patch: Value?? {
        switch self {
        case .absent: nil
        case .null: .some(nil)
        case .value(let value): .some(value)
        }
    }
}

/// Strict reading of a JSON object: unknown fields and wrong types are refused with `invalid_body`, naming the
/// field (`unknown field "emial"`, `field "phone" must be a string`). Nested objects name the path
/// (`consents.sms`).
struct JSONFields: Sendable {
    let fields: [String: JSONValue]
    /// Prefix for nested field names in messages.
    var path: String = ""

    /// Refuses the first (alphabetically) field not in `allowed`, so the message is the same on every run.
    func allowOnly(_ allowed: Set<String>) throws(APIProblem) {
        if let unknown = fields.keys.filter({ !allowed.contains($0) }).sorted().first {
            throw .invalidBody("unknown field \"\(path + unknown)\"")
        }
    }

    func name(_ field: String) -> String { path + field }

    func string(_ field: String) throws(APIProblem) -> FieldValue<String> {
        switch fields[field] {
        case nil: return .absent
        case .null?: return .null
        case .string(let value)?: return .value(value)
        default: throw .invalidBody("field \"\(name(field))\" must be a string")
        }
    }

    func integer(_ field: String) throws(APIProblem) -> FieldValue<Int64> {
        switch fields[field] {
        case nil: return .absent
        case .null?: return .null
        case .integer(let value)?: return .value(value)
        default: throw .invalidBody("field \"\(name(field))\" must be an integer")
        }
    }

    func bool(_ field: String) throws(APIProblem) -> FieldValue<Bool> {
        switch fields[field] {
        case nil: return .absent
        case .null?: return .null
        case .bool(let value)?: return .value(value)
        default: throw .invalidBody("field \"\(name(field))\" must be true or false")
        }
    }

    func strings(_ field: String) throws(APIProblem) -> FieldValue<[String]> {
        switch fields[field] {
        case nil: return .absent
        case .null?: return .null
        case .array(let items)?:
            var values: [String] = []
            for item in items {
                guard case .string(let value) = item else {
                    throw .invalidBody("field \"\(name(field))\" must be an array of strings")
                }
                values.append(value)
            }
            return .value(values)
        default: throw .invalidBody("field \"\(name(field))\" must be an array of strings")
        }
    }

    func object(_ field: String) throws(APIProblem) -> FieldValue<JSONFields> {
        switch fields[field] {
        case nil: return .absent
        case .null?: return .null
        case .object(let nested)?: return .value(JSONFields(fields: nested, path: name(field) + "."))
        default: throw .invalidBody("field \"\(name(field))\" must be an object")
        }
    }

    /// A field that must be present and not null.
    func required<Value>(_ field: String, _ read: (String) throws(APIProblem) -> FieldValue<Value>) throws(APIProblem) -> Value {
        guard let value = try read(field).value else { throw .invalidBody("field \"\(name(field))\" is required") }
        return value
    }
}
