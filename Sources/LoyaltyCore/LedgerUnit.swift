/// What an amount counts: whole loyalty points, or cashback in minor currency units (cents).
public enum LedgerUnit: String, Sendable, Hashable, CaseIterable, Codable {
    case points
    case cashbackMinor = "cashback_minor"
}

/// Errors of integer amount arithmetic. Overflow is an error, never a wrap.
public enum AmountError: Error, Equatable, CustomStringConvertible {
    case negative(field: String, value: Int64)
    case overflow(operation: String)
    case unitMismatch(LedgerUnit, LedgerUnit)

    public var description: String {
        switch self {
        case .negative(let field, let value): "\(field) must not be negative (got \(value))"
        case .overflow(let operation): "\(operation) overflows a 64-bit amount"
        case .unitMismatch(let left, let right): "cannot combine \(left.rawValue) with \(right.rawValue)"
        }
    }
}

/// A non-negative integer amount in a unit. Arithmetic is checked: it throws on overflow and on going below zero.
public struct Amount: Sendable, Hashable, Codable, CustomStringConvertible {
    public let unit: LedgerUnit
    public let value: Int64

    public init(_ value: Int64, _ unit: LedgerUnit, field: String = "amount") throws(AmountError) {
        guard value >= 0 else { throw .negative(field: field, value: value) }
        self.unit = unit
        self.value = value
    }

    public static func zero(_ unit: LedgerUnit) -> Amount { try! Amount(0, unit) }

    public func adding(_ other: Amount) throws(AmountError) -> Amount {
        guard unit == other.unit else { throw .unitMismatch(unit, other.unit) }
        let (sum, overflow) = value.addingReportingOverflow(other.value)
        guard !overflow else { throw .overflow(operation: "\(value) + \(other.value)") }
        return try Amount(sum, unit)
    }

    public func subtracting(_ other: Amount) throws(AmountError) -> Amount {
        guard unit == other.unit else { throw .unitMismatch(unit, other.unit) }
        guard other.value <= value else { throw .negative(field: "\(value) - \(other.value)", value: value &- other.value) }
        return try Amount(value - other.value, unit)
    }

    public var description: String { "\(value) \(unit.rawValue)" }
}
