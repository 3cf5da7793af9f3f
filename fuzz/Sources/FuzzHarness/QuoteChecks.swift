import Foundation
import LoyaltyCore
import POSProtocol

/// Basket validation and quote evaluation as Quote and Commit run them, with the guarantees `Quote` documents.
enum QuoteChecks {
    static let evaluator = RulesEvaluator(ruleSet: FuzzFixtures.ruleSet, rulesVersion: "fuzz")
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// The server's wire-to-domain mapping (`POSService.basket`): the line count is capped before anything is
    /// copied; everything else is left to `Basket.validate`.
    static func basket(_ wire: Loyalty_Pos_V1_Basket) -> Basket? {
        guard wire.lines.count <= RuleLimits.maxBasketLines else { return nil }
        return Basket(currency: wire.currency, lines: wire.lines.map {
            BasketLine(lineID: $0.lineID, sku: $0.sku, category: $0.category, quantity: $0.quantity,
                       unitPriceMinor: $0.unitPriceMinor, discountMinor: $0.discountMinor)
        })
    }

    static func check(_ wire: Loyalty_Pos_V1_Basket, tierSelector: Int64, availableBalance: Int64) {
        guard let basket = basket(wire) else { return }
        let tierCode = FuzzFixtures.tierCodes[Int(UInt64(bitPattern: tierSelector) % UInt64(FuzzFixtures.tierCodes.count))]
        let validation: BasketError?
        do { try basket.validate(currency: FuzzFixtures.ruleSet.currency); validation = nil } catch { validation = error }

        let quote: Quote
        do {
            quote = try evaluator.quote(
                basket: basket, tierCode: tierCode, campaigns: FuzzFixtures.campaigns, memberSegments: [],
                now: FuzzFixtures.now, availableBalance: availableBalance)
        } catch {
            _ = error.description  // the server sends it to the till
            if let validation {
                fuzzCheck(error == .basket(validation), "validation said \(validation), the quote threw \(error)")
            } else if case .overflow = error {
                // Documented for absurd prices and rates.
            } else {
                fuzzCheck(false, "a valid basket was refused: \(error)")
            }
            return
        }
        fuzzCheck(validation == nil, "an invalid basket was quoted: \(String(describing: validation))")
        checkGuarantees(quote, basket: basket, availableBalance: availableBalance)
        fuzzCheck((try? encoder.encode(quote)) != nil, "the quote does not encode as JSON")
    }

    static func checkGuarantees(_ quote: Quote, basket: Basket, availableBalance: Int64) {
        fuzzCheck(quote.lines.map(\.lineID) == basket.lines.map(\.lineID), "quote lines are not the basket's, in order")
        var awardTotal: Int64 = 0
        var paidTotal: Int64 = 0
        for (line, quoted) in zip(basket.lines, quote.lines) {
            fuzzCheck(quoted.award >= 0, "line \(line.lineID) earns a negative award \(quoted.award)")
            fuzzCheck(quoted.paidMinor == line.paidMinor, "line \(line.lineID) paid \(quoted.paidMinor)")
            if FuzzFixtures.ruleSet.earn.excludedCategories.contains(line.category) {
                fuzzCheck(quoted.award == 0, "excluded line \(line.lineID) earns \(quoted.award)")
            }
            let (awardSum, awardOverflow) = awardTotal.addingReportingOverflow(quoted.award)
            let (paidSum, paidOverflow) = paidTotal.addingReportingOverflow(quoted.paidMinor)
            fuzzCheck(!awardOverflow && !paidOverflow, "quote totals overflow")
            awardTotal = awardSum
            paidTotal = paidSum
        }
        fuzzCheck(awardTotal == quote.totalAward, "line awards add up to \(awardTotal), total says \(quote.totalAward)")
        fuzzCheck(paidTotal == quote.paidTotalMinor, "lines paid \(paidTotal), total says \(quote.paidTotalMinor)")
        let redeemable = quote.maxRedeemablePoints
        fuzzCheck(redeemable == 0
                  || (redeemable >= FuzzFixtures.ruleSet.redemption.minimumPoints && redeemable <= availableBalance),
                  "max redeemable \(redeemable) with a balance of \(availableBalance)")
    }
}
