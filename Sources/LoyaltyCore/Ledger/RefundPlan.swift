/// One line of a committed purchase as recorded for later returns.
public struct CheckoutLine: Sendable, Hashable, Codable {
    public let lineID: String
    public let quantity: Int64
    public let paidMinor: Int64
    /// What the line earned, in the purchase's award unit.
    public let award: Int64

    public init(lineID: String, quantity: Int64, paidMinor: Int64, award: Int64) {
        self.lineID = lineID
        self.quantity = quantity
        self.paidMinor = paidMinor
        self.award = award
    }

    enum CodingKeys: String, CodingKey {
        case lineID = "line_id", quantity, paidMinor = "paid_minor", award
    }
}

/// What a return of some lines of a purchase takes back, computed in integers from the purchase and what was
/// returned before. Any sequence of partial returns adds up to exactly what a full return takes back: each part
/// is the difference of two floors of the cumulative share (see `ProportionalReversal`).
public struct RefundPlan: Sendable, Equatable {
    /// Award to take back (what the returned quantities earned).
    public let awardToReverse: Int64
    /// Redeemed points to pay back, in proportion to the money refunded.
    public let pointsToRestore: Int64
    /// Money the returned quantities paid.
    public let refundedMinor: Int64
    /// Quantity per line returned so far, this return included.
    public let returnedAfter: [String: Int64]

    public init(awardToReverse: Int64, pointsToRestore: Int64, refundedMinor: Int64, returnedAfter: [String: Int64]) {
        self.awardToReverse = awardToReverse
        self.pointsToRestore = pointsToRestore
        self.refundedMinor = refundedMinor
        self.returnedAfter = returnedAfter
    }

    /// - Parameters:
    ///   - lines: the purchase's lines (unique ids).
    ///   - returnedBefore: quantity per line id returned by earlier refunds.
    ///   - returning: quantity per line id coming back now; every quantity must be positive.
    ///   - redeemedPoints: points the purchase was partly paid with.
    ///   - refundedBeforeMinor: money refunded by earlier refunds.
    public static func plan(
        lines: [CheckoutLine], returnedBefore: [String: Int64], returning: [String: Int64], redeemedPoints: Int64,
        refundedBeforeMinor: Int64
    ) throws(ProportionalReversalError) -> RefundPlan {
        for (lineID, quantity) in returning.sorted(by: { $0.key < $1.key }) where quantity <= 0 {
            throw .line(lineID, .nonPositiveQuantity(field: "quantity", value: quantity))
        }
        let awards = lines.map { LineAward(lineID: $0.lineID, quantity: $0.quantity, points: $0.award) }
        let award = try ProportionalReversal.reversal(for: awards, returned: returnedBefore, returning: returning)
        // Money per line uses the same cumulative-floor share, so partial refunds add up to the line's price.
        let paid = lines.map { LineAward(lineID: $0.lineID, quantity: $0.quantity, points: $0.paidMinor) }
        let money = try ProportionalReversal.reversal(for: paid, returned: returnedBefore, returning: returning)
        var total: Int64 = 0
        for line in lines {
            let (sum, overflow) = total.addingReportingOverflow(line.paidMinor)
            guard !overflow else { throw .overflow }
            total = sum
        }
        let restore: Int64 =
            if redeemedPoints == 0 || total == 0 {
                0
            } else {
                try ProportionalReversal.pointsToRestore(
                    redeemedPoints: redeemedPoints, basketTotalMinor: total, refundedMinorBefore: refundedBeforeMinor,
                    refundingNowMinor: money.total)
            }
        var after = returnedBefore
        for (lineID, quantity) in returning { after[lineID, default: 0] += quantity }
        return RefundPlan(awardToReverse: award.total, pointsToRestore: restore, refundedMinor: money.total,
                          returnedAfter: after)
    }
}
