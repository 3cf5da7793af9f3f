import Foundation

/// Evaluates baskets against a validated `RuleSet`. Pure and deterministic: the same rule set, basket, tier,
/// campaigns, segments, `now` and balance always give the same `Quote`, explanation text included.
///
/// Per line: paid = quantity × unit price − discount. An excluded category earns 0. Otherwise
///
///     exact award = paid × (rate × P × C + E × 10_000²) / 10_000³
///
/// - rate: the rate set on the member's tier itself (`tierRateOverrideBp`, the database's
///   `earn_rate_override_bp`) if given, else the tier's rate in the rules if listed, else the default rate
///   (bp of paid, in the earn unit);
/// - P, the product multiplier: the SKU's if listed (it wins over the category's), else the category's, else ×1;
/// - C, the campaign multiplier: ×1 plus the extra part of every applying multiplier campaign
///   (×2 and ×1.5 → ×2.5); C multiplies P (own brand ×2 in a double-points campaign → ×4);
/// - E: the sum of the applying campaigns' extra rates, added on top and not multiplied.
///
/// If the earning lines together pay less than the minimum basket, every line earns 0. Exact awards become whole
/// units as `RoundingMode` says. Then, when the basket's total is above `earn.max_award_per_basket`, it earns the
/// cap: each line keeps floor(award × cap / total) and the units left go one each to the lines with the largest
/// remainders (ties: the earlier line), so the lines still add up to the total and a refund of a line takes back
/// what that line earned. Arithmetic is integer and 128-bit wide; a result beyond 64 bits is an error.
public struct RulesEvaluator: Sendable {
    public let ruleSet: RuleSet
    /// Recorded on every quote, so a ledger entry says which rules produced it.
    public let rulesVersion: String?

    public init(ruleSet: RuleSet, rulesVersion: String? = nil) {
        self.ruleSet = ruleSet
        self.rulesVersion = rulesVersion
    }

    /// Quotes what `basket` earns for a member of tier `tierCode`, and how many points it could pay.
    ///
    /// - campaigns: the campaigns that may apply (each id once). One in force at `now` that targets a line of the
    ///   basket but is for another tier or for a segment the member is not in (`memberSegments` holds the ids of
    ///   campaigns whose segment the member is in) is listed in the explanation as not applied, with the reason;
    ///   campaigns not in force, or targeting nothing in the basket, are left out.
    /// - availableBalance: the member's spendable balance, ≥ 0; nil when the caller does not know it (a commit: the
    ///   ledger checks the balance when it redeems), and the redemption cap is the basket's alone.
    /// - tierRateOverrideBp: a rate configured on the tier itself; wins over the rules' rates.
    public func quote(
        basket: Basket, tierCode: String, campaigns: [CampaignMultiplier], memberSegments: Set<Int64>,
        now: Date, availableBalance: Int64?, tierRateOverrideBp: Int64? = nil
    ) throws(QuoteError) -> Quote {
        do { try basket.validate(currency: ruleSet.currency) } catch { throw .basket(error) }
        if let availableBalance, availableBalance < 0 { throw .negativeBalance(availableBalance) }
        let rate = try rate(tierCode: tierCode, override: tierRateOverrideBp)
        var ids = Set<Int64>()
        for campaign in campaigns where !ids.insert(campaign.campaignID).inserted {
            throw .duplicateCampaign(campaign.campaignID)
        }

        let earn = ruleSet.earn
        var basketSteps: [ExplanationStep] = []
        var applying: [CampaignMultiplier] = []
        for campaign in campaigns.sorted(by: { $0.campaignID < $1.campaignID }) where campaign.isActive(at: now) {
            if let why = campaign.memberExclusion(tierCode: tierCode, memberSegments: memberSegments) {
                // Only a campaign that targeted something in this basket is worth a line: the others are noise
                // that would grow with the program's campaign list.
                let targeted = basket.lines.contains {
                    campaign.matches($0) && !ruleSet.earn.excludedCategories.contains($0.category)
                }
                if targeted {
                    basketSteps.append(ExplanationStep(.campaignNotApplied(campaignID: campaign.campaignID,
                                                                           name: campaign.name, why: why)))
                }
            } else {
                applying.append(campaign)
            }
        }

        // Exact numerators per line (nil = excluded), before any rounding.
        var drafts: [LineDraft] = []
        var paidTotal: Int64 = 0
        var earningPaid: Int64 = 0
        var redeemablePaid: Int64 = 0
        for line in basket.lines {
            let paid = line.paidMinor!  // validated: fits
            paidTotal += paid  // validated: the basket total fits
            if !ruleSet.redemption.nonRedeemableCategories.contains(line.category) { redeemablePaid += paid }
            if earn.excludedCategories.contains(line.category) {
                drafts.append(LineDraft(line: line, paid: paid, numerator: nil,
                                        steps: [ExplanationStep(.excluded(category: line.category))]))
                continue
            }
            earningPaid += paid
            drafts.append(try draft(line: line, paid: paid, rate: rate, campaigns: applying))
        }

        let belowMinimum = earningPaid < earn.minimumBasketMinor
        let awards: [Int64]
        if belowMinimum {
            let step = ExplanationStep(.minimumBasketNotMet(earningPaidMinor: earningPaid,
                                                            minimumMinor: earn.minimumBasketMinor))
            basketSteps.append(step)
            for index in drafts.indices where drafts[index].numerator != nil {
                drafts[index].steps = [step]
            }
            awards = drafts.map { _ in 0 }
        } else {
            basketSteps.append(ExplanationStep(.minimumBasketMet(earningPaidMinor: earningPaid,
                                                                 minimumMinor: earn.minimumBasketMinor)))
            awards = capped(try round(&drafts, unit: earn.unit, basketSteps: &basketSteps), drafts: &drafts,
                            unit: earn.unit, basketSteps: &basketSteps)
        }

        var total: Int64 = 0
        for award in awards {
            let (sum, overflow) = total.addingReportingOverflow(award)
            guard !overflow else { throw .overflow("the total award") }
            total = sum
        }
        let lines = zip(drafts, awards).map { draft, award in
            LineQuote(lineID: draft.line.lineID, sku: draft.line.sku, category: draft.line.category,
                      quantity: draft.line.quantity, paidMinor: draft.paid, award: award, explanation: draft.steps)
        }
        let redeemable = maxRedeemable(redeemablePaid: redeemablePaid, balance: availableBalance,
                                       steps: &basketSteps)
        return Quote(unit: earn.unit, lines: lines, totalAward: total, paidTotalMinor: paidTotal,
                     earningPaidMinor: earningPaid, redeemablePaidMinor: redeemablePaid,
                     maxRedeemablePoints: redeemable, rulesVersion: rulesVersion, explanation: basketSteps)
    }

    struct LineDraft {
        let line: BasketLine
        let paid: Int64
        /// paid × K; nil for an excluded line.
        let numerator: UInt128?
        var steps: [ExplanationStep]
    }

    /// The member's rate and the step that explains it.
    private func rate(tierCode: String, override: Int64?) throws(QuoteError) -> (bp: Int64, step: ExplanationStep) {
        if let override {
            let limit = ruleSet.earn.unit == .points ? RuleLimits.maxPointsRateBp : RuleLimits.maxCashbackRateBp
            guard (0...limit).contains(override) else { throw .invalidTierRate(override) }
            return (override, ExplanationStep(.tierOwnRate(tier: tierCode, bp: override)))
        }
        let (rate, fromTier) = ruleSet.rateBp(forTier: tierCode)
        return (rate, fromTier
            ? ExplanationStep(.tierRate(tier: tierCode, bp: rate))
            : ExplanationStep(.defaultRate(tier: tierCode, bp: rate)))
    }

    private func draft(
        line: BasketLine, paid: Int64, rate rated: (bp: Int64, step: ExplanationStep), campaigns: [CampaignMultiplier]
    ) throws(QuoteError) -> LineDraft {
        var steps = [rated.step]
        let rate = rated.bp

        var product = RuleLimits.bpPerUnit
        if let bp = ruleSet.earn.skuMultipliersBp[line.sku] {
            product = bp
            let overridden = ruleSet.earn.categoryMultipliersBp[line.category] != nil ? line.category : nil
            steps.append(ExplanationStep(.skuMultiplier(sku: line.sku, bp: bp, overridesCategory: overridden)))
        } else if let bp = ruleSet.earn.categoryMultipliersBp[line.category] {
            product = bp
            steps.append(ExplanationStep(.categoryMultiplier(category: line.category, bp: bp)))
        }

        var campaignBp = RuleLimits.bpPerUnit
        var extraBp: Int64 = 0
        for campaign in campaigns where campaign.matches(line) {
            switch campaign.effect {
            case .multiplier(let bp):
                // Extra parts add: ×2 and ×1.5 give ×2.5. Each is at most maxMultiplierBp, so this cannot
                // overflow for any realistic count; checked all the same.
                let (sum, overflow) = campaignBp.addingReportingOverflow(bp - RuleLimits.bpPerUnit)
                guard !overflow else { throw .overflow("the campaign multiplier of line \(line.lineID)") }
                campaignBp = sum
                steps.append(ExplanationStep(.campaignMultiplier(campaignID: campaign.campaignID, name: campaign.name,
                                                                 bp: bp)))
            case .extraRate(let bp):
                let (sum, overflow) = extraBp.addingReportingOverflow(bp)
                guard !overflow else { throw .overflow("the extra rate of line \(line.lineID)") }
                extraBp = sum
                steps.append(ExplanationStep(.campaignExtraRate(campaignID: campaign.campaignID, name: campaign.name,
                                                                bp: bp)))
            }
        }
        guard let factor = ExactArithmetic.factor(rateBp: rate, productBp: product, campaignBp: campaignBp,
                                                  extraBp: extraBp),
              let numerator = ExactArithmetic.numerator(paidMinor: paid, factor: factor),
              ExactArithmetic.floor(numerator) != nil
        else { throw .overflow("the award of line \(line.lineID)") }
        return LineDraft(line: line, paid: paid, numerator: numerator, steps: steps)
    }

    /// Whole awards per line, as the rounding mode says; adds a rounding step to every earning line.
    private func round(
        _ drafts: inout [LineDraft], unit: LedgerUnit, basketSteps: inout [ExplanationStep]
    ) throws(QuoteError) -> [Int64] {
        let d = ExactArithmetic.denominator
        var awards = drafts.map { draft in draft.numerator.map { Int64($0 / d) } ?? 0 }
        switch ruleSet.earn.rounding {
        case .floorPerLine:
            for index in drafts.indices {
                guard let numerator = drafts[index].numerator else { continue }
                drafts[index].steps.append(ExplanationStep(.roundedPerLine(
                    unit: unit, paidMinor: drafts[index].paid, exact: ExactArithmetic.decimal(numerator),
                    award: awards[index])))
            }
            basketSteps.append(ExplanationStep(.roundingPerLine))
        case .floorPerBasket:
            var exactTotal: UInt128 = 0
            for draft in drafts {
                let (sum, overflow) = exactTotal.addingReportingOverflow(draft.numerator ?? 0)
                guard !overflow else { throw .overflow("the total award") }
                exactTotal = sum
            }
            guard let total = ExactArithmetic.floor(exactTotal) else { throw .overflow("the total award") }
            // floor(Σ exact) − Σ floor(exact) is below the number of lines with a remainder, so every extra
            // unit goes to a different line that has one.
            let bonus = Self.largestRemainders(drafts.map { $0.numerator.map { $0 % d } ?? 0 },
                                               units: total - awards.reduce(0, +))
            for index in bonus { awards[index] += 1 }
            for index in drafts.indices {
                guard let numerator = drafts[index].numerator else { continue }
                drafts[index].steps.append(ExplanationStep(.roundedInBasket(
                    unit: unit, paidMinor: drafts[index].paid, exact: ExactArithmetic.decimal(numerator),
                    floor: Int64(numerator / d), award: awards[index])))
            }
            basketSteps.append(ExplanationStep(.roundingPerBasket(
                unit: unit, exactTotal: ExactArithmetic.decimal(exactTotal), total: total)))
        }
        return awards
    }

    /// The indices that get one of `units` each: the largest non-zero remainders first, ties to the earlier index.
    /// Callers pass fewer units than there are non-zero remainders (a floored sum's leftover).
    static func largestRemainders(_ remainders: [UInt128], units: Int64) -> Set<Int> {
        let order = remainders.indices.filter { remainders[$0] != 0 }.sorted { left, right in
            remainders[left] != remainders[right] ? remainders[left] > remainders[right] : left < right
        }
        assert(units >= 0 && units <= Int64(order.count))
        return Set(order.prefix(Int(units)))
    }

    /// The awards under `earn.max_award_per_basket`: unchanged at or below it; above it, scaled down to it by
    /// largest remainder, with a step on the basket and on every line that lost something.
    private func capped(
        _ awards: [Int64], drafts: inout [LineDraft], unit: LedgerUnit, basketSteps: inout [ExplanationStep]
    ) -> [Int64] {
        // Summed in 128 bits (awards are non-negative); a total beyond 64 bits is left to the caller, which
        // refuses it as an overflow.
        let total = awards.reduce(UInt128(0)) { $0 + UInt128($1) }
        guard let cap = ruleSet.earn.maxAwardPerBasket, total > UInt128(cap), let uncapped = Int64(exactly: total)
        else { return awards }
        let products = awards.map { UInt128($0) * UInt128(cap) }
        var result = products.map { Int64($0 / total) }  // ≤ award: fits
        for index in Self.largestRemainders(products.map { $0 % total }, units: cap - result.reduce(0, +)) {
            result[index] += 1
        }
        assert(result.reduce(0, +) == cap)
        basketSteps.append(ExplanationStep(.basketCapped(unit: unit, uncapped: uncapped, cap: cap)))
        for index in drafts.indices where result[index] != awards[index] {
            drafts[index].steps.append(ExplanationStep(.lineCapped(unit: unit, award: awards[index], capped: result[index])))
        }
        return result
    }

    /// min(balance, floor(max share × redeemable paid / 10_000 / point value)), or 0 below the minimum points.
    /// With `balance` nil (not known: a commit, whose ledger call checks it) the cap alone.
    private func maxRedeemable(redeemablePaid: Int64, balance: Int64?, steps: inout [ExplanationStep]) -> Int64 {
        let rules = ruleSet.redemption
        // maxShare ≤ 10_000 and pointValue ≥ 1, so the cap is at most redeemablePaid: it fits in Int64.
        let cap = Int64(UInt128(rules.maxShareOfBasketBp) * UInt128(redeemablePaid)
            / (ExactArithmetic.bp * UInt128(rules.pointValueMinor)))
        let best = balance.map { min($0, cap) } ?? cap
        let result = best >= rules.minimumPoints ? best : 0
        steps.append(ExplanationStep(.redemptionCap(
            shareBp: rules.maxShareOfBasketBp, redeemablePaidMinor: redeemablePaid, pointValueMinor: rules.pointValueMinor,
            cap: cap, balance: balance, minimumPoints: rules.minimumPoints, maxRedeemable: result)))
        return result
    }
}
