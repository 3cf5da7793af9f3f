import Foundation
import Logging
import LoyaltyCache
import LoyaltyCore
import LoyaltyRules
import LoyaltyStore
import POSProtocol

/// Limits of the checkout methods, on top of the frame and basket limits.
enum CheckoutLimits {
    static let defaultHoldSeconds: UInt32 = 300
    /// Shorter than a customer takes to pay is a till's mistake, not a checkout.
    static let minimumHoldSeconds: UInt32 = 30
    static let maximumHoldSeconds: UInt32 = 3_600
    /// A till's clock may run this far ahead of the server's.
    static let clockSkewMs: Int64 = 5 * 60 * 1_000
    /// Tier changes between pricing and writing are rare; after this many the till gets ABORTED and retries.
    static let pricingAttempts = 3
}

/// The till's checkout: what is policy, over a `CheckoutLedger` that books it. Pricing from the member snapshot
/// (cached first), the rules of the purchase time and the loaded campaigns; the bounds of a redemption (the
/// program's minimum, the basket's cap) and of a hold; the re-price from PostgreSQL when the ledger says the tier
/// changed since pricing (`tier_changed`), or the campaigns did; the member the write left into the cache; and how
/// a ledger error reaches the till (status, code, message).
///
/// Guarantees: nothing is sent to the ledger that the policy refuses; a commit is priced at most
/// `CheckoutLimits.pricingAttempts` times; every answer is a `POSOutcome` with the wire's statuses and codes.
final class Checkout: Sendable {
    /// Holds, cancels and refunds; commits go through `commits`, which batches them over the same ledger.
    let ledger: any CheckoutLedger
    /// Concurrent commits share one ledger call.
    let commits: CommitBatcher
    let members: any CheckoutMembers
    let rules: CurrentRules
    let campaigns: ActiveCampaigns
    let logger: Logger

    init(
        ledger: any CheckoutLedger, commitLimits: CommitBatcher.Limits = CommitBatcher.Limits(), members: any CheckoutMembers,
        rules: CurrentRules, campaigns: ActiveCampaigns, logger: Logger
    ) {
        self.ledger = ledger
        self.commits = CommitBatcher(ledger: ledger, limits: commitLimits)
        self.members = members
        self.rules = rules
        self.campaigns = campaigns
        self.logger = logger
    }

    // MARK: Quote

    func quote(_ request: Loyalty_Pos_V1_QuoteRequest) async -> POSOutcome {
        guard request.memberID > 0 else { return .error(.invalidArgument, "bad_member_id", "member id must be positive") }
        let purchasedAt: Date
        switch purchaseTime(request.purchasedAtMs) {
        case .success(let date): purchasedAt = date
        case .failure(let early): return early.outcome
        }
        let loaded = rules.rules(at: purchasedAt)
        let snapshot: CachedMember?
        do { snapshot = try await members.pricingSnapshot(memberID: request.memberID, cacheFirst: true, fillCache: true) } catch { return Self.failure(error, logger: logger) }
        guard let snapshot else { return .error(.notFound, "unknown_member", "no member \(request.memberID)") }
        let pricing = Self.pricing(snapshot)
        let quote: Quote
        switch evaluate(request.basket, loaded: loaded, pricing: pricing, purchasedAt: purchasedAt,
                        availableBalance: max(0, pricing.availablePoints)) {
        case .success(let value): quote = value
        case .failure(let early): return early.outcome
        }
        var response = Loyalty_Pos_V1_QuoteResponse()
        response.unit = quote.unit.rawValue
        response.lines = quote.lines.map(Self.lineAward)
        response.totalAward = quote.totalAward
        response.maxRedeemablePoints = quote.maxRedeemablePoints
        response.rulesVersion = loaded.version
        response.explanationJson = ExplanationJSON.steps(quote.explanation)
        response.paidTotalMinor = quote.paidTotalMinor
        return .ok(response)
    }

    // MARK: Hold

    func hold(_ request: Loyalty_Pos_V1_HoldRequest, terminalID: String, deadline: ContinuousClock.Instant) async -> POSOutcome {
        if let bad = Self.checkID(request.posTransactionID, field: "pos_transaction_id") { return bad }
        guard request.memberID > 0 else { return .error(.invalidArgument, "bad_member_id", "member id must be positive") }
        guard request.points > 0 else { return .error(.invalidArgument, "invalid_amount", "points to hold must be positive") }
        let seconds = request.holdSeconds == 0 ? CheckoutLimits.defaultHoldSeconds : request.holdSeconds
        guard (CheckoutLimits.minimumHoldSeconds...CheckoutLimits.maximumHoldSeconds).contains(seconds) else {
            return .error(.invalidArgument, "invalid_hold_seconds",
                          "hold_seconds must be \(CheckoutLimits.minimumHoldSeconds)-\(CheckoutLimits.maximumHoldSeconds), or 0 for the default \(CheckoutLimits.defaultHoldSeconds)")
        }
        // A commit redeems at least the program's minimum, and never more than its hold: a smaller hold could
        // never be redeemed.
        let minimumPoints = rules.current.ruleSet.redemption.minimumPoints
        guard request.points >= minimumPoints else {
            return .error(.invalidArgument, "invalid_amount",
                          "hold at least \(minimumPoints) points, the smallest redemption; \(request.points) could never be redeemed")
        }
        let hold = POSHold(terminalID: terminalID, posTransactionID: request.posTransactionID,
                           memberID: request.memberID, points: request.points, holdSeconds: Int(seconds))
        do {
            let (result, member) = try await LedgerMetrics.measure("pos_hold") { () async throws(LedgerStoreError) in
                try await ledger.hold(hold, deadline: deadline)
            }
            await members.refresh(row: member, facts: nil)
            var response = Loyalty_Pos_V1_HoldResponse()
            response.holdID = result.holdId
            response.points = Self.balances(result.balances)
            response.expiresAtMs = result.expiresAtMs
            return .ok(response)
        } catch {
            return Self.failure(error, logger: logger)
        }
    }

    // MARK: Commit

    func commit(_ request: Loyalty_Pos_V1_CommitRequest, terminalID: String, deadline: ContinuousClock.Instant) async -> POSOutcome {
        if let bad = Self.checkID(request.posTransactionID, field: "pos_transaction_id") { return bad }
        guard request.memberID > 0 else { return .error(.invalidArgument, "bad_member_id", "member id must be positive") }
        guard request.redeemPoints >= 0 else { return .error(.invalidArgument, "invalid_amount", "redeem_points must not be negative") }
        guard request.holdID >= 0 else { return .error(.invalidArgument, "invalid_amount", "hold_id must not be negative") }
        let purchasedAt: Date
        switch purchaseTime(request.purchasedAtMs) {
        case .success(let date): purchasedAt = date
        case .failure(let early): return early.outcome
        }
        let basket: Basket
        switch Self.basket(request.basket) {
        case .success(let value): basket = value
        case .failure(let early): return early.outcome
        }
        let loaded = rules.rules(at: purchasedAt)
        let commit = POSCommit(
            terminalID: terminalID, posTransactionID: request.posTransactionID, memberID: request.memberID,
            basket: basket, holdID: request.holdID == 0 ? nil : request.holdID, redeemPoints: request.redeemPoints,
            purchasedAtMs: request.purchasedAtMs, purchasedAt: purchasedAt)
        for attempt in 1...CheckoutLimits.pricingAttempts {
            // The cached snapshot first; after a tier_changed refusal, PostgreSQL (the snapshot was old).
            let snapshot: CachedMember?
            do { snapshot = try await members.pricingSnapshot(memberID: request.memberID, cacheFirst: attempt == 1, fillCache: false) } catch { return Self.failure(error, logger: logger) }
            guard let snapshot else { return .error(.notFound, "unknown_member", "no member \(request.memberID)") }
            let pricing = Self.pricing(snapshot)
            // The cap is the basket's: held points count as the member's, and the ledger checks the balance.
            let pricedCampaigns = campaigns.loaded
            let quote: Quote
            switch evaluate(request.basket, loaded: loaded, pricing: pricing, purchasedAt: purchasedAt, availableBalance: nil,
                            campaigns: pricedCampaigns) {
            case .success(let value): quote = value
            case .failure(let early): return early.outcome
            }
            if request.redeemPoints > 0 {
                let minimum = loaded.ruleSet.redemption.minimumPoints
                guard request.redeemPoints <= quote.maxRedeemablePoints, request.redeemPoints >= minimum else {
                    let message = quote.maxRedeemablePoints == 0
                        ? "this basket cannot be paid with points: its redemption cap is under the \(minimum)-point minimum; send redeem_points 0"
                        : "redeem between \(minimum) and \(quote.maxRedeemablePoints) points for this basket, not \(request.redeemPoints)"
                    return .error(.failedPrecondition, "redemption_not_allowed", message)
                }
            }
            let days = TimeInterval(86_400)
            let availableAt = purchasedAt.addingTimeInterval(Double(loaded.ruleSet.returnWindowDays) * days)
            let expiresAt = loaded.ruleSet.expiryDays == 0 ? nil : purchasedAt.addingTimeInterval(Double(loaded.ruleSet.expiryDays) * days)
            let priced = POSCommitPricing(
                pricedAtTier: pricing.tierCode, unit: quote.unit, award: quote.totalAward, availableAt: availableAt,
                expiresAt: expiresAt, rulesVersion: loaded.version, explanationJSON: CompactExplanation.encode(quote),
                campaignsVersion: pricedCampaigns.version,
                spendMinor: quote.paidTotalMinor, paidTotalMinor: quote.paidTotalMinor,
                lines: quote.lines.map { CheckoutLine(lineID: $0.lineID, quantity: $0.quantity, paidMinor: $0.paidMinor, award: $0.award) })
            do {
                let answer = try await LedgerMetrics.measure("pos_commit") { () async throws(LedgerStoreError) in
                    try await commits.commit(commit, pricing: priced, deadline: deadline)
                }
                let result = answer.result
                let member = answer.member
                await members.refresh(row: member, facts: snapshot.pricing.map { (snapshot.tierCode, $0) })
                var response = Loyalty_Pos_V1_CommitResponse()
                response.accrualEntryID = result.accrualEntryId
                response.redemptionEntryID = result.redemptionEntryId
                response.awarded = result.awarded
                response.redeemed = result.redeemed
                response.points = Self.balances(result.points)
                response.replayed = result.replayed
                response.unit = result.unit.rawValue
                response.rulesVersion = result.rulesVersion ?? ""
                // The recorded lines (a replay must answer what was booked, even if the tier changed since), with the
                // explanation of this pricing where it gave the same award.
                let explained = Dictionary(quote.lines.map { ($0.lineID, $0) }, uniquingKeysWith: { first, _ in first })
                response.lines = result.lines.map { line in
                    var award = Loyalty_Pos_V1_LineAward()
                    award.lineID = line.lineID
                    award.quantity = line.quantity
                    award.paidMinor = line.paidMinor
                    award.award = line.award
                    if let priced = explained[line.lineID], priced.award == line.award { award.explanationJson = ExplanationJSON.steps(priced.explanation) }
                    return award
                }
                response.tierCode = member.tierCode
                response.tierChangedFrom = result.tierChange?.from ?? ""
                if result.replayed { logger.info("pos commit replayed", metadata: ["terminal": "\(terminalID)", "txn": "\(request.posTransactionID)"]) }
                return .ok(response)
            } catch .tierChanged where attempt < CheckoutLimits.pricingAttempts {
                continue
            } catch .campaignsChanged where attempt < CheckoutLimits.pricingAttempts {
                // A campaign was scheduled or cancelled since this server loaded them: load them now, price again.
                await campaigns.refresh()
                continue
            } catch {
                return Self.failure(error, logger: logger)
            }
        }
        return .error(.aborted, "tier_changed", "the member's tier kept changing while pricing; retry with the same id")
    }

    // MARK: Cancel and refund

    func cancel(_ request: Loyalty_Pos_V1_CancelRequest, terminalID: String, deadline: ContinuousClock.Instant) async -> POSOutcome {
        if let bad = Self.checkID(request.posTransactionID, field: "pos_transaction_id") { return bad }
        guard request.holdID >= 0 else { return .error(.invalidArgument, "invalid_amount", "hold_id must not be negative") }
        do {
            // A hold id, when sent, must be the hold taken under this transaction id on this terminal.
            if request.holdID != 0 {
                let held = try await ledger.heldID(terminalID: terminalID, posTransactionID: request.posTransactionID)
                guard let held else {
                    return .error(.notFound, "unknown_hold", "no hold was taken under pos_transaction_id \(request.posTransactionID) on this terminal; send hold_id 0 to cancel the purchase")
                }
                guard held == request.holdID else {
                    return .error(.invalidArgument, "hold_mismatch", "hold \(request.holdID) was not taken under pos_transaction_id \(request.posTransactionID) on this terminal")
                }
            }
            let (result, member) = try await LedgerMetrics.measure("pos_cancel") { () async throws(LedgerStoreError) in
                try await ledger.cancel(terminalID: terminalID, posTransactionID: request.posTransactionID, deadline: deadline)
            }
            await members.refresh(row: member, facts: nil)
            var response = Loyalty_Pos_V1_CancelResponse()
            response.points = Self.balances(result.points)
            response.replayed = result.replayed
            response.cancelled = result.cancelled
            response.awardReversed = result.awardReversed
            response.pointsRestored = result.pointsRestored
            return .ok(response)
        } catch {
            return Self.failure(error, logger: logger)
        }
    }

    func refund(_ request: Loyalty_Pos_V1_RefundRequest, terminalID: String, deadline: ContinuousClock.Instant) async -> POSOutcome {
        if let bad = Self.checkID(request.refundID, field: "refund_id") { return bad }
        if let bad = Self.checkID(request.originalPosTransactionID, field: "original_pos_transaction_id") { return bad }
        guard !request.lines.isEmpty, request.lines.count <= RuleLimits.maxBasketLines else {
            return .error(.invalidArgument, "invalid_refund", "name 1-\(RuleLimits.maxBasketLines) lines to refund")
        }
        var returning: [String: Int64] = [:]
        for line in request.lines {
            guard line.quantity > 0 else {
                return .error(.invalidArgument, "invalid_refund", "line \(line.lineID): quantity must be at least 1")
            }
            guard returning.updateValue(line.quantity, forKey: line.lineID) == nil else {
                return .error(.invalidArgument, "invalid_refund", "line \(line.lineID) is named twice; send each line once")
            }
        }
        let originalTerminal = request.originalTerminalID.isEmpty ? terminalID : request.originalTerminalID
        let refund = POSRefund(terminalID: terminalID, refundID: request.refundID, originalTerminalID: originalTerminal,
                               originalPOSTransactionID: request.originalPosTransactionID, returning: returning)
        do {
            let (result, member) = try await LedgerMetrics.measure("pos_refund") { () async throws(LedgerStoreError) in
                try await ledger.refund(refund, deadline: deadline)
            }
            await members.refresh(row: member, facts: nil)
            var response = Loyalty_Pos_V1_RefundResponse()
            response.awardReversed = result.awardReversed
            response.pointsRestored = result.pointsRestored
            response.points = Self.balances(result.points)
            response.replayed = result.replayed
            response.unit = result.unit.rawValue
            response.refundedMinor = result.refundedMinor
            response.awardUnrecovered = result.awardUnrecovered
            return .ok(response)
        } catch {
            return Self.failure(error, logger: logger)
        }
    }

    // MARK: Helpers

    /// The purchase time: now for 0, else the till's time, which may lie in the past (offline replay) but not
    /// beyond the return window, and not in the future beyond clock skew.
    func purchaseTime(_ milliseconds: Int64) -> Result<Date, POSOutcomeError> {
        let nowMs = Int64(Date().timeIntervalSince1970 * 1_000)
        guard milliseconds != 0 else { return .success(Date(timeIntervalSince1970: Double(nowMs) / 1_000)) }
        guard milliseconds <= nowMs + CheckoutLimits.clockSkewMs else {
            return .failure(POSOutcomeError(.error(.invalidArgument, "purchase_in_future",
                "purchased_at_ms is more than 5 minutes ahead of the server's clock; check the till's clock")))
        }
        let windowDays = Int64(max(1, rules.current.ruleSet.returnWindowDays))
        guard milliseconds >= nowMs - windowDays * 86_400_000 else {
            return .failure(POSOutcomeError(.error(.failedPrecondition, "purchase_too_old",
                "the purchase is older than the \(windowDays)-day return window; support can adjust the member's points instead")))
        }
        // A time ahead of the server's clock (a till's clock running fast, within the allowed skew) is booked at
        // the server's: the ledger counts a purchase's spend up to the transaction's now(), so a purchase stamped
        // later would miss its own tier window and not upgrade the member it qualifies. The request hash keeps the
        // till's value, so a retry still matches.
        return .success(Date(timeIntervalSince1970: Double(min(milliseconds, nowMs)) / 1_000))
    }

    static func pricing(_ member: CachedMember) -> MemberPricing {
        MemberPricing(
            memberId: member.memberID, tierCode: member.tierCode, tierRateOverrideBp: member.pricing?.tierRateOverrideBp,
            status: member.status, availablePoints: member.points.available, campaignSegments: member.pricing?.campaignSegments)
    }

    /// - campaigns: the loaded campaigns to price with (nil: the current ones); a commit passes the set whose version
    ///   it sends along, so the ledger can refuse a pricing the campaigns moved past.
    func evaluate(
        _ wire: Loyalty_Pos_V1_Basket, loaded: LoadedRules, pricing: MemberPricing, purchasedAt: Date, availableBalance: Int64?,
        campaigns priced: LoadedCampaigns? = nil
    ) -> Result<Quote, POSOutcomeError> {
        let basket: Basket
        switch Self.basket(wire) {
        case .success(let value): basket = value
        case .failure(let error): return .failure(error)
        }
        do {
            return .success(try loaded.evaluator.quote(
                basket: basket, tierCode: pricing.tierCode, campaigns: (priced ?? campaigns.loaded).campaigns,
                memberSegments: Set(pricing.campaignSegments ?? []), now: purchasedAt,
                availableBalance: availableBalance, tierRateOverrideBp: pricing.tierRateOverrideBp))
        } catch .invalidTierRate(let bp) {
            logger.error("tier has an earn rate the rules refuse", metadata: ["tier": "\(pricing.tierCode)", "bp": "\(bp)"])
            return .failure(POSOutcomeError(.error(.internal, "tier_misconfigured", "tier \(pricing.tierCode) has an invalid earn rate; ask an admin to fix it")))
        } catch {
            return .failure(POSOutcomeError(.error(.invalidArgument, "invalid_basket", error.description)))
        }
    }

    static func basket(_ wire: Loyalty_Pos_V1_Basket) -> Result<Basket, POSOutcomeError> {
        guard wire.lines.count <= RuleLimits.maxBasketLines else {
            return .failure(POSOutcomeError(.error(.invalidArgument, "invalid_basket", "a basket has at most \(RuleLimits.maxBasketLines) lines")))
        }
        return .success(Basket(currency: wire.currency, lines: wire.lines.map {
            BasketLine(lineID: $0.lineID, sku: $0.sku, category: $0.category, quantity: $0.quantity,
                       unitPriceMinor: $0.unitPriceMinor, discountMinor: $0.discountMinor)
        }))
    }

    static func checkID(_ id: String, field: String) -> POSOutcome? {
        guard !id.isEmpty, id.utf8.count <= CheckoutStore.maximumTransactionIDBytes,
              id.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else {
            return .error(.invalidArgument, "bad_\(field)", "\(field) must be 1-\(CheckoutStore.maximumTransactionIDBytes) printable ASCII characters")
        }
        return nil
    }

    static func lineAward(_ line: LineQuote) -> Loyalty_Pos_V1_LineAward {
        var award = Loyalty_Pos_V1_LineAward()
        award.lineID = line.lineID
        award.quantity = line.quantity
        award.paidMinor = line.paidMinor
        award.award = line.award
        award.explanationJson = ExplanationJSON.steps(line.explanation)
        return award
    }

    static func balances(_ balances: MemberBalances) -> Loyalty_Pos_V1_Balances {
        .with { $0.available = balances.available; $0.pending = balances.pending; $0.held = balances.held }
    }

    /// A ledger error as the till sees it: a status that says whether to retry, a stable code, and a message.
    static func failure(_ error: LedgerStoreError, logger: Logger) -> POSOutcome {
        let status: POSStatus =
            switch error {
            case .insufficientBalance, .memberNotActive, .holdNotActive, .notReversible, .transactionVoided,
                .notABonusCampaign, .campaignEnded, .campaignAlreadyRunning, .campaignHasNoSegment,
                .dailyAdjustmentLimitReached: .failedPrecondition
            case .unknownMember, .unknownHold, .unknownEntry, .unknownTransaction, .unknownCampaign: .notFound
            case .holdExceeded, .holdMismatch, .invalidAmount, .invalidDates, .reversalExceedsRemaining,
                .refundExceedsPurchase, .invalidRefund: .invalidArgument
            case .idempotencyConflict: .alreadyExists
            case .tierChanged, .campaignsChanged, .refundConflict: .aborted
            case .invariantViolated, .database: .internal
            case .unavailable: .unavailable
            }
        switch status {
        case .internal: logger.error("pos request failed", metadata: ["code": "\(error.code)", "error": "\(error)"])
        case .unavailable: logger.warning("pos request could not reach PostgreSQL", metadata: ["error": "\(error)"])
        default: break
        }
        let message =
            switch error {
            case .idempotencyConflict: "this id was already used for a different request on this terminal; use a new id"
            case .unavailable: "the ledger is unreachable; retry with the same id"
            default: error.description
            }
        return .error(status, error.code, message)
    }
}
