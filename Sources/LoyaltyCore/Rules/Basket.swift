/// One line of a till basket. Money in minor units; `discountMinor` is the discount on the whole line.
public struct BasketLine: Sendable, Hashable, Codable {
    public var lineID: String
    public var sku: String
    public var category: String
    public var quantity: Int64
    public var unitPriceMinor: Int64
    public var discountMinor: Int64

    public init(lineID: String, sku: String, category: String, quantity: Int64, unitPriceMinor: Int64,
                discountMinor: Int64 = 0) {
        self.lineID = lineID
        self.sku = sku
        self.category = category
        self.quantity = quantity
        self.unitPriceMinor = unitPriceMinor
        self.discountMinor = discountMinor
    }

    /// quantity × unit price − discount, or nil when quantity × price does not fit in 64 bits.
    public var paidMinor: Int64? {
        let (gross, overflow) = quantity.multipliedReportingOverflow(by: unitPriceMinor)
        return overflow ? nil : gross - discountMinor
    }
}

/// A purchase to quote. `validate(currency:)` checks it before any arithmetic; the evaluator always does.
public struct Basket: Sendable, Hashable, Codable {
    public var currency: String
    public var lines: [BasketLine]

    public init(currency: String, lines: [BasketLine]) {
        self.currency = currency
        self.lines = lines
    }

    /// Throws the first problem, in line order: 1...`RuleLimits.maxBasketLines` lines, the program's currency,
    /// unique non-empty line ids, a SKU and category on every line, quantity 1...`RuleLimits.maxLineQuantity`,
    /// prices ≥ 0, discount within 0...quantity × price, and line and basket totals that fit in 64 bits.
    public func validate(currency programCurrency: String) throws(BasketError) {
        guard currency == programCurrency else { throw .currencyMismatch(basket: currency, program: programCurrency) }
        guard !lines.isEmpty else { throw .noLines }
        guard lines.count <= RuleLimits.maxBasketLines else { throw .tooManyLines(count: lines.count) }
        var seen = Set<String>()
        var total: Int64 = 0
        for (index, line) in lines.enumerated() {
            guard RuleLimits.isValidCode(line.lineID) else { throw .invalidLineID(index: index, lineID: line.lineID) }
            guard seen.insert(line.lineID).inserted else { throw .duplicateLineID(line.lineID) }
            guard RuleLimits.isValidCode(line.sku) else { throw .invalidCode(lineID: line.lineID, field: "sku") }
            guard RuleLimits.isValidCode(line.category) else {
                throw .invalidCode(lineID: line.lineID, field: "category")
            }
            guard (1...RuleLimits.maxLineQuantity).contains(line.quantity) else {
                throw .quantityOutOfRange(lineID: line.lineID, quantity: line.quantity)
            }
            guard line.unitPriceMinor >= 0 else {
                throw .negativeUnitPrice(lineID: line.lineID, unitPriceMinor: line.unitPriceMinor)
            }
            let (gross, overflow) = line.quantity.multipliedReportingOverflow(by: line.unitPriceMinor)
            guard !overflow else { throw .lineOverflow(lineID: line.lineID) }
            guard (0...gross).contains(line.discountMinor) else {
                throw .discountOutOfRange(lineID: line.lineID, discountMinor: line.discountMinor, maxMinor: gross)
            }
            let (sum, sumOverflow) = total.addingReportingOverflow(gross - line.discountMinor)
            guard !sumOverflow else { throw .basketOverflow }
            total = sum
        }
    }
}

/// Why a basket was refused. Each description says what to send instead.
public enum BasketError: Error, Equatable, Sendable, CustomStringConvertible {
    case currencyMismatch(basket: String, program: String)
    case noLines
    case tooManyLines(count: Int)
    case invalidLineID(index: Int, lineID: String)
    case duplicateLineID(String)
    /// `field` is "sku" or "category".
    case invalidCode(lineID: String, field: String)
    case quantityOutOfRange(lineID: String, quantity: Int64)
    case negativeUnitPrice(lineID: String, unitPriceMinor: Int64)
    case discountOutOfRange(lineID: String, discountMinor: Int64, maxMinor: Int64)
    case lineOverflow(lineID: String)
    case basketOverflow

    public var description: String {
        switch self {
        case .currencyMismatch(let basket, let program):
            "the basket is in \(basket) but the program is in \(program): send the basket in \(program)"
        case .noLines: "the basket has no lines: send at least one"
        case .tooManyLines(let count):
            "the basket has \(count) lines, more than the limit of \(RuleLimits.maxBasketLines): split it"
        case .invalidLineID(let index, let lineID):
            "line \(index + 1) has line id \"\(lineID)\": use 1 to \(RuleLimits.maxCodeLength) printable "
                + "characters without spaces"
        case .duplicateLineID(let lineID): "line id \(lineID) appears twice: give each line its own id"
        case .invalidCode(let lineID, let field):
            "line \(lineID): \(field) must be 1 to \(RuleLimits.maxCodeLength) printable characters without spaces"
        case .quantityOutOfRange(let lineID, let quantity):
            "line \(lineID): quantity must be between 1 and \(RuleLimits.maxLineQuantity), got \(quantity)"
        case .negativeUnitPrice(let lineID, let price):
            "line \(lineID): unit price must not be negative, got \(price)"
        case .discountOutOfRange(let lineID, let discount, let maxMinor):
            "line \(lineID): discount must be between 0 and quantity × unit price (\(maxMinor)), got \(discount)"
        case .lineOverflow(let lineID): "line \(lineID): quantity × unit price does not fit in a 64-bit amount"
        case .basketOverflow: "the basket total does not fit in a 64-bit amount"
        }
    }
}
