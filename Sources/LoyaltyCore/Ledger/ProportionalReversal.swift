/// One line of a purchase and the points it earned.
public struct LineAward: Sendable, Hashable, Codable {
    public let lineID: String
    public let quantity: Int64
    public let points: Int64

    public init(lineID: String, quantity: Int64, points: Int64) {
        self.lineID = lineID
        self.quantity = quantity
        self.points = points
    }
}

/// Why a proportional reversal could not be computed. Descriptions say what to send instead.
public indirect enum ProportionalReversalError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A quantity or basket total that must be positive was not.
    case nonPositiveQuantity(field: String, value: Int64)
    case negativeValue(field: String, value: Int64)
    /// Returned (or refunded) before plus now would be `total`, more than the `quantity` bought (or paid).
    case exceedsQuantity(total: Int64, quantity: Int64)
    case unknownLine(String)
    case duplicateLine(String)
    /// A line's problem, with the line it is about.
    case line(String, ProportionalReversalError)
    case overflow

    public var description: String {
        switch self {
        case .nonPositiveQuantity(let field, let value):
            "\(field) must be greater than zero (got \(value))"
        case .negativeValue(let field, let value):
            "\(field) must not be negative (got \(value))"
        case .exceedsQuantity(let total, let quantity):
            "that would take back \(total) in all, more than the \(quantity) of the original: take back less"
        case .unknownLine(let lineID):
            "line \(lineID) is not in the purchase: use the line ids of the original purchase"
        case .duplicateLine(let lineID):
            "line \(lineID) appears twice in the purchase: send each line once"
        case .line(let lineID, let error):
            "line \(lineID): \(error)"
        case .overflow:
            "the points of the lines add up to more than a 64-bit amount"
        }
    }
}

/// Proportional take-back of points for returns and refunds, in integers only.
///
/// Guarantee: the part for `before ..< before + now` is floor(total × (before + now) / whole) −
/// floor(total × before / whole), so any sequence of partial returns adds up to exactly floor(total × returned /
/// whole), and a full return takes back exactly `total`, however it is split. Intermediate products are 128-bit,
/// so nothing overflows.
public enum ProportionalReversal {
    /// Points to take back when `returningNow` more of a line's `lineQuantity` come back, `returnedQuantityBefore`
    /// having come back already.
    public static func pointsToReverse(
        linePoints: Int64, lineQuantity: Int64, returnedQuantityBefore: Int64, returningNow: Int64
    ) throws(ProportionalReversalError) -> Int64 {
        try share(of: linePoints, totalField: "linePoints", whole: lineQuantity, wholeField: "lineQuantity",
                  before: returnedQuantityBefore, beforeField: "returnedQuantityBefore",
                  now: returningNow, nowField: "returningNow")
    }

    /// Points to pay back when `refundingNowMinor` more of a basket paid partly with `redeemedPoints` is refunded,
    /// `refundedMinorBefore` having been refunded already. Money is in minor currency units.
    public static func pointsToRestore(
        redeemedPoints: Int64, basketTotalMinor: Int64, refundedMinorBefore: Int64, refundingNowMinor: Int64
    ) throws(ProportionalReversalError) -> Int64 {
        try share(of: redeemedPoints, totalField: "redeemedPoints", whole: basketTotalMinor,
                  wholeField: "basketTotalMinor", before: refundedMinorBefore, beforeField: "refundedMinorBefore",
                  now: refundingNowMinor, nowField: "refundingNowMinor")
    }

    /// Points to take back for a return of several lines. `returned`: quantity per line id returned before;
    /// `returning`: quantity per line id coming back now (lines not named are not returned). `perLine` has an
    /// entry for every line in `returning`.
    public static func reversal(
        for lines: [LineAward], returned: [String: Int64], returning: [String: Int64]
    ) throws(ProportionalReversalError) -> (total: Int64, perLine: [String: Int64]) {
        var byID: [String: LineAward] = [:]
        for line in lines {
            guard byID.updateValue(line, forKey: line.lineID) == nil else { throw .duplicateLine(line.lineID) }
        }
        for lineID in returned.keys.sorted() where byID[lineID] == nil { throw .unknownLine(lineID) }
        for lineID in returning.keys.sorted() where byID[lineID] == nil { throw .unknownLine(lineID) }
        var total: Int64 = 0
        var perLine: [String: Int64] = [:]
        // Sorted so that, with several bad lines, the error is always about the same one.
        for (lineID, quantity) in returning.sorted(by: { $0.key < $1.key }) {
            guard let line = byID[lineID] else { continue }
            let points: Int64
            do {
                points = try pointsToReverse(linePoints: line.points, lineQuantity: line.quantity,
                                             returnedQuantityBefore: returned[lineID] ?? 0, returningNow: quantity)
            } catch {
                throw .line(lineID, error)
            }
            let (sum, overflow) = total.addingReportingOverflow(points)
            guard !overflow else { throw .overflow }
            total = sum
            perLine[lineID] = points
        }
        return (total, perLine)
    }

    private static func share(
        of total: Int64, totalField: String, whole: Int64, wholeField: String,
        before: Int64, beforeField: String, now: Int64, nowField: String
    ) throws(ProportionalReversalError) -> Int64 {
        guard whole > 0 else { throw .nonPositiveQuantity(field: wholeField, value: whole) }
        guard total >= 0 else { throw .negativeValue(field: totalField, value: total) }
        guard before >= 0 else { throw .negativeValue(field: beforeField, value: before) }
        guard now >= 0 else { throw .negativeValue(field: nowField, value: now) }
        let (after, overflow) = before.addingReportingOverflow(now)
        guard !overflow, after <= whole else {
            throw .exceedsQuantity(total: overflow ? .max : after, quantity: whole)
        }
        return floorShare(total, after, whole) - floorShare(total, before, whole)
    }

    /// floor(total × part / whole) for 0 <= part <= whole: the 128-bit product cannot overflow and the quotient
    /// is at most `total`, so it fits.
    private static func floorShare(_ total: Int64, _ part: Int64, _ whole: Int64) -> Int64 {
        whole.dividingFullWidth(total.multipliedFullWidth(by: part)).quotient
    }
}
