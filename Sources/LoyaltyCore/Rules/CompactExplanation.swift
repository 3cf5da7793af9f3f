import Foundation

/// The explanation as the ledger stores it on a purchase's journal entry: the quote's facts (rule codes and
/// numbers), no sentences. Less than half the full form's bytes (tested), written by hand (an encoder cost more than the
/// rest of a commit's Swift work), and rendered back into the full `Quote` where it is read, so a reader sees the
/// same explanation as the till did.
///
///     {"x":1,"u":"points","t":[paid_total,earning_paid,redeemable_paid,max_redeemable,total_award],
///      "l":[[line_id,sku,category,quantity,paid_minor,award,[step…]]…],"b":[step…]}
///
/// A step is an array headed by its code (`stepCodes` below); amounts are integers, exact decimals strings.
/// `x` is the layout's version: a reader meeting an unknown version shows the stored JSON as it is.
public enum CompactExplanation {
    public static let version = 1

    /// Whether stored explanation JSON is in this layout (an object with `"x"`), judged from its top-level keys.
    public static func isCompact(topLevelKeys: some Sequence<String>) -> Bool { topLevelKeys.contains("x") }

    // MARK: Writing

    public static func encode(_ quote: Quote) -> String {
        var out = "{\"x\":\(version),\"u\":\(JSONText.quoted(quote.unit.rawValue)),\"t\":["
        out += "\(quote.paidTotalMinor),\(quote.earningPaidMinor),\(quote.redeemablePaidMinor),"
        out += "\(quote.maxRedeemablePoints),\(quote.totalAward)],\"l\":["
        for (index, line) in quote.lines.enumerated() {
            if index > 0 { out += "," }
            out += "[\(JSONText.quoted(line.lineID)),\(JSONText.quoted(line.sku)),\(JSONText.quoted(line.category)),"
            out += "\(line.quantity),\(line.paidMinor),\(line.award),"
            steps(line.explanation, into: &out)
            out += "]"
        }
        out += "],\"b\":"
        steps(quote.explanation, into: &out)
        out += "}"
        return out
    }

    static func steps(_ steps: [ExplanationStep], into out: inout String) {
        out += "["
        for (index, step) in steps.enumerated() {
            if index > 0 { out += "," }
            out += code(step.fact)
        }
        out += "]"
    }

    static func code(_ fact: ExplanationFact) -> String {
        let q = JSONText.quoted
        switch fact {
        case .campaignNotApplied(let id, let name, .notForTier(let tier)): return "[\"na\",\(id),\(q(name)),\"tier\",\(q(tier))]"
        case .campaignNotApplied(let id, let name, .notInSegment): return "[\"na\",\(id),\(q(name)),\"seg\"]"
        case .excluded(let category): return "[\"ex\",\(q(category))]"
        case .minimumBasketNotMet(let paid, let minimum): return "[\"mb-\",\(paid),\(minimum)]"
        case .minimumBasketMet(let paid, let minimum): return "[\"mb\",\(paid),\(minimum)]"
        case .tierOwnRate(let tier, let bp): return "[\"to\",\(q(tier)),\(bp)]"
        case .tierRate(let tier, let bp): return "[\"tr\",\(q(tier)),\(bp)]"
        case .defaultRate(let tier, let bp): return "[\"dr\",\(q(tier)),\(bp)]"
        case .skuMultiplier(let sku, let bp, nil): return "[\"sku\",\(q(sku)),\(bp)]"
        case .skuMultiplier(let sku, let bp, let category?): return "[\"sku\",\(q(sku)),\(bp),\(q(category))]"
        case .categoryMultiplier(let category, let bp): return "[\"cat\",\(q(category)),\(bp)]"
        case .campaignMultiplier(let id, let name, let bp): return "[\"cm\",\(id),\(q(name)),\(bp)]"
        case .campaignExtraRate(let id, let name, let bp): return "[\"ce\",\(id),\(q(name)),\(bp)]"
        case .roundedPerLine(_, let paid, let exact, let award): return "[\"rl\",\(paid),\(q(exact)),\(award)]"
        case .roundedInBasket(_, let paid, let exact, let floor, let award):
            return "[\"rb\",\(paid),\(q(exact)),\(floor),\(award)]"
        case .roundingPerLine: return "[\"RL\"]"
        case .roundingPerBasket(_, let exactTotal, let total): return "[\"RB\",\(q(exactTotal)),\(total)]"
        case .redemptionCap(let shareBp, let redeemable, let pointValue, let cap, let balance, let minimum, let result):
            return "[\"rd\",\(shareBp),\(redeemable),\(pointValue),\(cap),\(balance.map(String.init) ?? "null"),\(minimum),\(result)]"
        case .basketCapped(_, let uncapped, let cap): return "[\"cap\",\(uncapped),\(cap)]"
        case .lineCapped(_, let award, let capped): return "[\"cl\",\(award),\(capped)]"
        case .text(let rule, let detail, let id, let bp):
            return "[\"t\",\(q(rule.rawValue)),\(q(detail)),\(id.map(String.init) ?? "null"),\(bp.map(String.init) ?? "null")]"
        }
    }

    // MARK: Reading

    /// The full quote from stored compact JSON; `rulesVersion` comes from the journal entry's own column.
    public static func decode(_ json: Data, rulesVersion: String?) throws -> Quote {
        let stored = try JSONDecoder().decode(Stored.self, from: json)
        guard stored.x == version else { throw CompactExplanationError.unknownVersion(stored.x) }
        guard stored.t.count == 5 else { throw CompactExplanationError.malformed("t must hold five totals") }
        let unit = stored.u
        let lines = stored.l.map { line in
            LineQuote(lineID: line.lineID, sku: line.sku, category: line.category, quantity: line.quantity,
                      paidMinor: line.paidMinor, award: line.award,
                      explanation: line.steps.map { ExplanationStep($0.fact.inUnit(unit)) })
        }
        return Quote(unit: unit, lines: lines, totalAward: stored.t[4], paidTotalMinor: stored.t[0],
                     earningPaidMinor: stored.t[1], redeemablePaidMinor: stored.t[2], maxRedeemablePoints: stored.t[3],
                     rulesVersion: rulesVersion, explanation: stored.b.map { ExplanationStep($0.fact.inUnit(unit)) })
    }

    struct Stored: Decodable {
        let x: Int
        let u: LedgerUnit
        let t: [Int64]
        let l: [StoredLine]
        let b: [StoredStep]
    }

    struct StoredLine: Decodable {
        let lineID: String, sku: String, category: String
        let quantity: Int64, paidMinor: Int64, award: Int64
        let steps: [StoredStep]

        init(from decoder: any Decoder) throws {
            var array = try decoder.unkeyedContainer()
            lineID = try array.decode(String.self)
            sku = try array.decode(String.self)
            category = try array.decode(String.self)
            quantity = try array.decode(Int64.self)
            paidMinor = try array.decode(Int64.self)
            award = try array.decode(Int64.self)
            steps = try array.decode([StoredStep].self)
        }
    }

    /// One coded step. Rounding steps are read with a placeholder unit; `inUnit` sets the quote's.
    struct StoredStep: Decodable {
        let fact: ExplanationFact

        init(from decoder: any Decoder) throws {
            var a = try decoder.unkeyedContainer()
            let code = try a.decode(String.self)
            func s() throws -> String { try a.decode(String.self) }
            func n() throws -> Int64 { try a.decode(Int64.self) }
            func optionalN() throws -> Int64? { try a.decodeIfPresent(Int64.self) }
            switch code {
            case "na":
                let (id, name, why) = (try n(), try s(), try s())
                switch why {
                case "tier": fact = .campaignNotApplied(campaignID: id, name: name, why: .notForTier(try s()))
                case "seg": fact = .campaignNotApplied(campaignID: id, name: name, why: .notInSegment)
                default: throw CompactExplanationError.malformed("unknown campaign exclusion \(why)")
                }
            case "ex": fact = .excluded(category: try s())
            case "mb-": fact = .minimumBasketNotMet(earningPaidMinor: try n(), minimumMinor: try n())
            case "mb": fact = .minimumBasketMet(earningPaidMinor: try n(), minimumMinor: try n())
            case "to": fact = .tierOwnRate(tier: try s(), bp: try n())
            case "tr": fact = .tierRate(tier: try s(), bp: try n())
            case "dr": fact = .defaultRate(tier: try s(), bp: try n())
            case "sku": fact = .skuMultiplier(sku: try s(), bp: try n(), overridesCategory: a.isAtEnd ? nil : try s())
            case "cat": fact = .categoryMultiplier(category: try s(), bp: try n())
            case "cm": fact = .campaignMultiplier(campaignID: try n(), name: try s(), bp: try n())
            case "ce": fact = .campaignExtraRate(campaignID: try n(), name: try s(), bp: try n())
            case "rl": fact = .roundedPerLine(unit: .points, paidMinor: try n(), exact: try s(), award: try n())
            case "rb":
                fact = .roundedInBasket(unit: .points, paidMinor: try n(), exact: try s(), floor: try n(), award: try n())
            case "RL": fact = .roundingPerLine
            case "RB": fact = .roundingPerBasket(unit: .points, exactTotal: try s(), total: try n())
            case "rd":
                fact = .redemptionCap(shareBp: try n(), redeemablePaidMinor: try n(), pointValueMinor: try n(), cap: try n(),
                                      balance: try optionalN(), minimumPoints: try n(), maxRedeemable: try n())
            case "cap": fact = .basketCapped(unit: .points, uncapped: try n(), cap: try n())
            case "cl": fact = .lineCapped(unit: .points, award: try n(), capped: try n())
            case "t":
                let rawRule = try s()
                guard let rule = ExplanationRule(rawValue: rawRule) else {
                    throw CompactExplanationError.malformed("unknown rule \(rawRule)")
                }
                fact = .text(rule: rule, detail: try s(), campaignID: try optionalN(), effectBp: try optionalN())
            default:
                throw CompactExplanationError.malformed("unknown step code \(code)")
            }
        }
    }
}

public enum CompactExplanationError: Error, Equatable, CustomStringConvertible {
    case unknownVersion(Int)
    case malformed(String)

    public var description: String {
        switch self {
        case .unknownVersion(let version): "compact explanation version \(version) is newer than this server reads"
        case .malformed(let what): "malformed compact explanation: \(what)"
        }
    }
}

extension ExplanationFact {
    /// The same fact in `unit` (only rounding and cap facts carry one).
    func inUnit(_ unit: LedgerUnit) -> ExplanationFact {
        switch self {
        case .roundedPerLine(_, let paid, let exact, let award):
            .roundedPerLine(unit: unit, paidMinor: paid, exact: exact, award: award)
        case .roundedInBasket(_, let paid, let exact, let floor, let award):
            .roundedInBasket(unit: unit, paidMinor: paid, exact: exact, floor: floor, award: award)
        case .roundingPerBasket(_, let exactTotal, let total):
            .roundingPerBasket(unit: unit, exactTotal: exactTotal, total: total)
        case .basketCapped(_, let uncapped, let cap): .basketCapped(unit: unit, uncapped: uncapped, cap: cap)
        case .lineCapped(_, let award, let capped): .lineCapped(unit: unit, award: award, capped: capped)
        default: self
        }
    }
}

/// The full form of explanation steps as the till receives them (`explanation_json`), written by hand (an encoder
/// was a large share of a commit's CPU) with the keys in sorted order, as the encoder wrote them before.
public enum ExplanationJSON {
    public static func steps(_ steps: [ExplanationStep]) -> String {
        var out = "["
        for (index, step) in steps.enumerated() {
            if index > 0 { out += "," }
            out += "{"
            if let id = step.campaignID { out += "\"campaign_id\":\(id)," }
            out += "\"detail\":\(JSONText.quoted(step.detail)),"
            if let bp = step.effectBp { out += "\"effect_bp\":\(bp)," }
            out += "\"rule\":\(JSONText.quoted(step.rule.rawValue))}"
        }
        return out + "]"
    }
}
