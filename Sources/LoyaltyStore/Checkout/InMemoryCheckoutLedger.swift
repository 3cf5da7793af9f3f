import Foundation
import LoyaltyCore
import Synchronization

/// The checkout ledger in memory, on the pure `LedgerModel`: the same calls, answers and errors as the
/// `checkout_*` SQL functions behind `CheckoutWriter`, for unit tests of the checkout's policy without PostgreSQL and
/// as the oracle the SQL is compared with (`CheckoutOracleTests`). Not durable; never wired into the server.
///
/// What it reproduces (read from migrations 0011, 0013, 0017 and 0023):
/// - idempotency on (terminal, operation, id) with the request hash the writer sends: the stored answer with
///   `replayed` true (a commit's with the points booked then, the member as it is now), `idempotencyConflict` for
///   another request under the same id; a refused request stores nothing;
/// - the checks in the SQL's order: amounts, member, status, the priced tier (`tierChanged`), the hold (unknown,
///   another member's, terminal's or transaction's, not active, exceeded), the balance, dates;
/// - the campaigns version check of a whole batch (`campaignsChanged` for every item sent);
/// - redemption, hold release, accrual into a pending or available lot, lot consumption order, tier upgrades on
///   purchase spend (tiers given at init), refunds planned by `RefundPlan` with reversals from the purchase's own
///   lot first, restored redemptions, unrecovered award, voids, negative spend on refunds;
/// - hold expiry as the hold-expiry job does it (`expireHolds(now:)`);
/// - the member's ledger version: moved once by every write, not by a replay or a refusal, except that a call of
///   several commits moves it for the members of its set-based pass even when their item is refused (see
///   `setBasedPass`).
///
/// What it does not: entry and hold ids are its own (the SQL's come from sequences and a random source: compare
/// whether an id is there, not its value); `expiresAtMs` of a hold is its own clock's (the SQL's `now()` is a few
/// milliseconds apart); lot activation and expiry jobs, admin writes other than `adjust`, blocking and erasure, and
/// concurrent duplicates (it answers one call at a time, as PostgreSQL does after its locks).
public final class InMemoryCheckoutLedger: CheckoutLedger {
    /// A tier of the ladder, as the `tiers` table holds it.
    public struct Tier: Sendable, Equatable {
        public var code: String
        public var name: String
        public var rank: Int
        public var qualificationSpendMinor: Int64
        public var qualificationWindowDays: Int

        public init(code: String, name: String, rank: Int, qualificationSpendMinor: Int64, qualificationWindowDays: Int) {
            self.code = code
            self.name = name
            self.rank = rank
            self.qualificationSpendMinor = qualificationSpendMinor
            self.qualificationWindowDays = qualificationWindowDays
        }

        /// The tier every database starts with (migration 0001).
        public static let base = Tier(code: "base", name: "Member", rank: 0, qualificationSpendMinor: 0, qualificationWindowDays: 365)
    }

    struct Member {
        var tier: Tier
        var status = "active"
        var ledgerVersion: Int64
        /// Spend of purchases (positive) and refunds (negative) with when it happened, for tier qualification.
        var spend: [(at: Date, minor: Int64)] = []
    }

    struct Hold {
        var modelID: Int64
        var member: Int64
        var terminalID: String
        var posTransactionID: String
        var amount: Int64
        var expiresAt: Date
        /// active, committed, released, expired: the SQL's words.
        var state: String
    }

    struct Purchase {
        var member: Int64
        var unit: LedgerUnit
        /// Whether an accrual entry was written (award or spend), and the model's entries behind the amounts.
        var hasAccrualEntry: Bool
        var modelAccrual: Int64?
        var modelRedemption: Int64?
        var awarded: Int64
        var redeemed: Int64
        var paidTotalMinor: Int64
        var lines: [CheckoutLine]
        var returned: [String: Int64] = [:]
        var refundedMinor: Int64 = 0
        var voided = false
    }

    enum Answer {
        case commit(CommitResult, member: Int64)
        case hold(HoldResult, member: Int64)
        case cancel(CancelResult)
        case refund(RefundResult, member: Int64)
    }

    struct Stored {
        var hash: [UInt8]
        var answer: Answer
    }

    struct PurchaseKey: Hashable {
        var terminalID: String
        var posTransactionID: String
    }

    struct State {
        var model = LedgerModel()
        var members: [Int64: Member] = [:]
        var holds: [Int64: Hold] = [:]
        var purchases: [PurchaseKey: Purchase] = [:]
        var keys: [IdempotencyKey: Stored] = [:]
        var campaignsVersion: Int64 = 0
        /// Ids of the entries an answer names (accrual, redemption); only whether one is there is comparable.
        var nextEntryID: Int64 = 1
    }

    public let maximumBatch: Int
    let tiers: [Tier]
    private let state = Mutex(State())

    /// - Parameters:
    ///   - tiers: the tier ladder; must hold `Tier.base` or another rank-0 tier new members start in.
    ///   - maximumBatch: most commits per `commitBatch` call, as the writer's.
    public init(tiers: [Tier] = [.base], maximumBatch: Int = CheckoutWriter.maximumBatch) {
        precondition(tiers.contains { $0.rank == 0 }, "a ladder needs a rank-0 tier")
        self.tiers = tiers.sorted { $0.rank < $1.rank }
        self.maximumBatch = maximumBatch
    }

    // MARK: Setting up (what admin writes and jobs do in PostgreSQL)

    /// Registers a member in the lowest tier, at `ledgerVersion` (a test copies the database member's).
    public func addMember(id: Int64, ledgerVersion: Int64 = 0) {
        state.withLock { state in
            guard state.model.addMember(id: id) else { return }
            state.members[id] = Member(tier: tiers[0], ledgerVersion: ledgerVersion)
        }
    }

    /// Moves a member to another tier (an admin's tier change): its next commit priced at the old tier is refused.
    public func setTier(memberID: Int64, code: String) {
        state.withLock { state in
            guard let tier = tiers.first(where: { $0.code == code }) else { preconditionFailure("no tier \(code)") }
            state.members[memberID]?.tier = tier
            state.members[memberID]?.ledgerVersion += 1
        }
    }

    /// Sets the member's status (active, blocked, ...): only active members may commit or hold.
    public func setStatus(memberID: Int64, _ status: String) {
        state.withLock { state in
            state.members[memberID]?.status = status
            state.members[memberID]?.ledgerVersion += 1
        }
    }

    /// The campaigns version commits are checked against (`campaigns_version`).
    public func setCampaignsVersion(_ version: Int64) {
        state.withLock { $0.campaignsVersion = version }
    }

    /// A manual correction in points, as `ledger_adjust`: positive into a new available lot expiring at
    /// `expiresAt`, negative from the available lots.
    public func adjust(memberID: Int64, delta: Int64, expiresAt: Date?, now: Date = Date()) throws(LedgerStoreError) {
        try state.withLock { state throws(LedgerStoreError) in
            guard state.members[memberID] != nil else { throw .unknownMember(memberID) }
            do throws(LedgerError) {
                try state.model.adjust(member: memberID, unit: .points, delta: delta, reason: "seed", actor: "test", now: now,
                                       expiresAt: expiresAt)
            } catch {
                throw Self.storeError(error)
            }
            state.members[memberID]?.ledgerVersion += 1
        }
    }

    /// Releases active holds whose expiry passed, as the hold-expiry job (`ledger_expire_holds`). Answers how many.
    @discardableResult
    public func expireHolds(now: Date = Date()) -> Int {
        state.withLock { state in
            let due = state.holds.filter { $0.value.state == "active" && $0.value.expiresAt <= now }
                .sorted { ($0.value.member, $0.key) < ($1.value.member, $1.key) }
            for (id, hold) in due {
                do { try state.model.release(holdID: hold.modelID) } catch { preconditionFailure("an active hold could not be released: \(error)") }
                state.holds[id]?.state = "expired"
                state.members[hold.member]?.ledgerVersion += 1
            }
            return due.count
        }
    }

    /// The member as a checkout answer carries it; nil for an unknown member.
    public func member(_ memberID: Int64) -> CheckoutMemberRow? {
        state.withLock { Self.row(memberID, in: $0) }
    }

    // MARK: CheckoutLedger

    public func commitBatch(
        _ items: [(POSCommit, POSCommitPricing)], deadline: ContinuousClock.Instant? = nil
    ) async -> [Result<CommitAnswer, LedgerStoreError>] {
        precondition(!items.isEmpty && items.count <= maximumBatch, "batches are 1-\(maximumBatch) commits")
        let now = Date()
        return state.withLock { state in
            var answers: [Result<CommitAnswer, LedgerStoreError>?] = Array(repeating: nil, count: items.count)
            var sent: [(index: Int, key: IdempotencyKey)] = []
            for (index, (commit, _)) in items.enumerated() {
                // The writer checks the id before sending; a bad one is answered alone.
                do throws(LedgerStoreError) {
                    sent.append((index, try CheckoutStore.key(terminalID: commit.terminalID, "commit", commit.posTransactionID)))
                } catch {
                    answers[index] = .failure(error)
                }
            }
            // The campaigns check refuses the whole call (migration 0017), replays included.
            let current = state.campaignsVersion
            if let stale = sent.compactMap({ items[$0.index].1.campaignsVersion }).filter({ $0 != current }).min() {
                for item in sent { answers[item.index] = .failure(.campaignsChanged(pricedAt: stale, now: current)) }
                return answers.map { $0! }
            }
            // Ids already stored are answered first, from the state before this call's writes (checkout_commit_batch).
            let open = sent.filter { state.keys[$0.key] == nil }
            for item in sent where state.keys[item.key] != nil {
                let (commit, pricing) = items[item.index]
                answers[item.index] = Self.commit(commit, pricing: pricing, key: item.key, tiers: tiers, now: now, state: &state)
            }
            let movedBefore = Self.setBasedPass(open.map { (items[$0.index].0.memberID, $0.key) }, batchSize: sent.count, state: &state)
            // The rest one at a time in member order, as checkout_commit_items (distinct members do not interact).
            for item in open.sorted(by: { (items[$0.index].0.memberID, $0.index) < (items[$1.index].0.memberID, $1.index) }) {
                let (commit, pricing) = items[item.index]
                answers[item.index] = Self.commit(
                    commit, pricing: pricing, key: item.key, tiers: tiers, now: now,
                    versionMoved: movedBefore.contains(item.key), state: &state)
            }
            return answers.map { $0! }
        }
    }

    public func hold(
        _ request: POSHold, deadline: ContinuousClock.Instant? = nil
    ) async throws(LedgerStoreError) -> (result: HoldResult, member: CheckoutMemberRow) {
        let key = try CheckoutStore.key(terminalID: request.terminalID, "hold", request.posTransactionID)
        let hash = requestHash("pos-hold", request)
        let now = Date()
        return try state.withLock { state throws(LedgerStoreError) in
            if let stored = try Self.stored(key, hash: hash, in: state) {
                guard case .hold(var result, let member) = stored.answer else { throw Self.otherAnswer(key) }
                result.replayed = true
                return (result, try Self.existingRow(member, in: state))
            }
            guard request.points > 0 else { throw .invalidAmount("amount=\(request.points)") }
            let expiresAt = now.addingTimeInterval(TimeInterval(request.holdSeconds))
            guard expiresAt > now else { throw .invalidDates("expires_at=\(expiresAt)") }
            _ = try Self.activeMember(request.memberID, in: state)
            let available = state.model.balances(member: request.memberID, unit: .points).available
            guard request.points <= available else {
                throw .insufficientBalance(bucket: "available", requested: request.points, available: available)
            }
            let entry: LedgerEntry
            do throws(LedgerError) {
                entry = try state.model.hold(member: request.memberID, unit: .points, amount: request.points, expiresAt: expiresAt)
            } catch {
                throw Self.storeError(error)
            }
            let holdID = Self.randomHoldID(taken: state.holds)
            state.holds[holdID] = Hold(
                modelID: entry.holdID!, member: request.memberID, terminalID: request.terminalID,
                posTransactionID: request.posTransactionID, amount: request.points, expiresAt: expiresAt, state: "active")
            state.nextEntryID += 1
            state.members[request.memberID]?.ledgerVersion += 1
            let result = HoldResult(
                holdId: holdID, balances: Self.points(request.memberID, in: state),
                expiresAtMs: Int64((expiresAt.timeIntervalSince1970 * 1_000).rounded()), replayed: false)
            state.keys[key] = Stored(hash: hash, answer: .hold(result, member: request.memberID))
            return (result, try Self.existingRow(request.memberID, in: state))
        }
    }

    public func cancel(
        terminalID: String, posTransactionID: String, deadline: ContinuousClock.Instant? = nil
    ) async throws(LedgerStoreError) -> (result: CancelResult, member: CheckoutMemberRow) {
        let key = try CheckoutStore.key(terminalID: terminalID, "cancel", posTransactionID)
        let hash = requestHash("pos-cancel", ["txn": posTransactionID])
        let now = Date()
        return try state.withLock { state throws(LedgerStoreError) in
            if let stored = try Self.stored(key, hash: hash, in: state) {
                guard case .cancel(var result) = stored.answer else { throw Self.otherAnswer(key) }
                result.replayed = true
                return (result, try Self.existingRow(result.memberId, in: state))
            }
            let result: CancelResult
            let purchaseKey = PurchaseKey(terminalID: terminalID, posTransactionID: posTransactionID)
            if var purchase = state.purchases[purchaseKey] {
                // A void takes back what is left of the purchase (checkout_refund_apply with p_void).
                guard !purchase.voided else { throw .transactionVoided(posTransactionID: posTransactionID) }
                let reverse = purchase.modelAccrual.map { purchase.awarded - state.model.reversedAmount(entryID: $0) } ?? 0
                let restore = purchase.modelRedemption.map { purchase.redeemed - state.model.reversedAmount(entryID: $0) } ?? 0
                let refunded = purchase.paidTotalMinor - purchase.refundedMinor
                _ = try Self.takeBack(&purchase, reverse: reverse, restore: restore, refundedMinor: refunded, now: now, state: &state)
                purchase.returned = Dictionary(purchase.lines.map { ($0.lineID, $0.quantity) }, uniquingKeysWith: { first, _ in first })
                purchase.refundedMinor += refunded
                purchase.voided = true
                state.purchases[purchaseKey] = purchase
                state.members[purchase.member]?.ledgerVersion += 1
                result = CancelResult(
                    cancelled: "commit", memberId: purchase.member, awardReversed: reverse, pointsRestored: restore,
                    points: Self.points(purchase.member, in: state), replayed: false)
            } else {
                // Else the hold taken under the id, found through the hold's own key.
                let holdKey = try IdempotencyKey(scope: key.scope, key: "hold:\(posTransactionID)")
                guard case .hold(let held, _)? = state.keys[holdKey]?.answer, let hold = state.holds[held.holdId] else {
                    throw .unknownTransaction(terminalID: terminalID, posTransactionID: posTransactionID)
                }
                guard hold.state == "active" else { throw .holdNotActive(holdID: held.holdId, state: hold.state) }
                do throws(LedgerError) { try state.model.release(holdID: hold.modelID) } catch { throw Self.storeError(error) }
                state.holds[held.holdId]?.state = "released"
                state.nextEntryID += 1
                state.members[hold.member]?.ledgerVersion += 1
                result = CancelResult(
                    cancelled: "hold", memberId: hold.member, awardReversed: 0, pointsRestored: 0,
                    points: Self.points(hold.member, in: state), replayed: false)
            }
            state.keys[key] = Stored(hash: hash, answer: .cancel(result))
            return (result, try Self.existingRow(result.memberId, in: state))
        }
    }

    public func heldID(terminalID: String, posTransactionID: String) async throws(LedgerStoreError) -> Int64? {
        let key = try CheckoutStore.key(terminalID: terminalID, "hold", posTransactionID)
        return state.withLock { state in
            guard case .hold(let result, _)? = state.keys[key]?.answer else { return nil }
            return result.holdId
        }
    }

    public func refund(
        _ refund: POSRefund, deadline: ContinuousClock.Instant? = nil
    ) async throws(LedgerStoreError) -> (result: RefundResult, member: CheckoutMemberRow) {
        let key = try CheckoutStore.key(terminalID: refund.terminalID, "refund", refund.refundID)
        let hash = requestHash("pos-refund", refund)
        let now = Date()
        return try state.withLock { state throws(LedgerStoreError) in
            let purchaseKey = PurchaseKey(terminalID: refund.originalTerminalID, posTransactionID: refund.originalPOSTransactionID)
            // The writer reads the purchase before anything else: no purchase, no refund (replays included).
            guard var purchase = state.purchases[purchaseKey] else {
                throw .unknownTransaction(terminalID: refund.originalTerminalID, posTransactionID: refund.originalPOSTransactionID)
            }
            if let stored = try Self.stored(key, hash: hash, in: state) {
                guard case .refund(var result, let member) = stored.answer else { throw Self.otherAnswer(key) }
                result.replayed = true
                return (result, try Self.existingRow(member, in: state))
            }
            guard !purchase.voided else { throw .transactionVoided(posTransactionID: refund.originalPOSTransactionID) }
            let plan: RefundPlan
            do throws(ProportionalReversalError) {
                plan = try RefundPlan.plan(
                    lines: purchase.lines, returnedBefore: purchase.returned, returning: refund.returning,
                    redeemedPoints: purchase.redeemed, refundedBeforeMinor: purchase.refundedMinor)
            } catch {
                throw .invalidRefund(error)
            }
            guard purchase.refundedMinor + plan.refundedMinor <= purchase.paidTotalMinor else {
                throw .refundExceedsPurchase(paidTotalMinor: purchase.paidTotalMinor, refundedBeforeMinor: purchase.refundedMinor,
                                             refundingMinor: plan.refundedMinor)
            }
            let unrecovered = try Self.takeBack(
                &purchase, reverse: plan.awardToReverse, restore: plan.pointsToRestore, refundedMinor: plan.refundedMinor, now: now,
                state: &state)
            purchase.returned = plan.returnedAfter
            purchase.refundedMinor += plan.refundedMinor
            state.purchases[purchaseKey] = purchase
            state.members[purchase.member]?.ledgerVersion += 1
            let result = RefundResult(
                awardReversed: plan.awardToReverse, pointsRestored: plan.pointsToRestore, unit: purchase.unit,
                refundedMinor: plan.refundedMinor, awardUnrecovered: unrecovered, points: Self.points(purchase.member, in: state),
                replayed: false)
            state.keys[key] = Stored(hash: hash, answer: .refund(result, member: purchase.member))
            return (result, try Self.existingRow(purchase.member, in: state))
        }
    }

    // MARK: The commit of one item (checkout_commit_items of migration 0023)

    /// What the SQL's set-based pass (checkout_commit_fast) leaves visible beyond its items' answers: a call of two
    /// or more commits locks every member of its new items in one UPDATE that moves their ledger version, and that
    /// move stays even for an item the pass then refuses. Items whose member or id occurs once among the new ones go
    /// through that pass (their own write moves the version no further); the others go one at a time afterwards
    /// (each success moves it again). Answers the keys of the items of the pass.
    static func setBasedPass(_ open: [(member: Int64, key: IdempotencyKey)], batchSize: Int, state: inout State) -> Set<IdempotencyKey> {
        guard batchSize >= 2 else { return [] }
        var members: [Int64: Int] = [:]
        var keys: [IdempotencyKey: Int] = [:]
        for item in open {
            members[item.member, default: 0] += 1
            keys[item.key, default: 0] += 1
        }
        let pass = open.filter { members[$0.member] == 1 && keys[$0.key] == 1 }
        guard !pass.isEmpty else { return [] }
        for member in Set(open.map(\.member)) { state.members[member]?.ledgerVersion += 1 }
        return Set(pass.map(\.key))
    }

    /// - versionMoved: the set-based pass already moved the member's version for this item.
    static func commit(
        _ commit: POSCommit, pricing: POSCommitPricing, key: IdempotencyKey, tiers: [Tier], now: Date, versionMoved: Bool = false,
        state: inout State
    ) -> Result<CommitAnswer, LedgerStoreError> {
        do throws(LedgerStoreError) {
            let hash = commit.requestHash
            if let stored = try Self.stored(key, hash: hash, in: state) {
                guard case .commit(var result, let member) = stored.answer else { throw otherAnswer(key) }
                result.replayed = true
                return .success(CommitAnswer(result: result, member: try existingRow(member, in: state)))
            }
            let memberID = commit.memberID
            let redeem = commit.redeemPoints
            guard pricing.award >= 0, redeem >= 0, pricing.spendMinor >= 0, pricing.paidTotalMinor >= 0 else {
                throw .invalidAmount("award=\(pricing.award) redeem=\(redeem) spend_minor=\(pricing.spendMinor)")
            }
            var member = try activeMember(memberID, in: state)
            if let priced = pricing.pricedAtTier, priced != member.tier.code {
                throw .tierChanged(memberID: memberID, pricedAt: priced, now: member.tier.code)
            }
            var hold: Hold?
            if let holdID = commit.holdID {
                guard let found = state.holds[holdID] else { throw .unknownHold(holdID) }
                guard found.member == memberID, found.terminalID == commit.terminalID,
                      found.posTransactionID == commit.posTransactionID
                else { throw .holdMismatch(holdID: holdID) }
                guard found.state == "active" else { throw .holdNotActive(holdID: holdID, state: found.state) }
                guard redeem <= found.amount else { throw .holdExceeded(holdID: holdID, requested: redeem, held: found.amount) }
                hold = found
            } else if redeem > 0 {
                let available = state.model.balances(member: memberID, unit: .points).available
                guard redeem <= available else { throw .insufficientBalance(bucket: "available", requested: redeem, available: available) }
            }
            // After the balance check, as the SQL (its accrual comes after the redemption).
            if pricing.award > 0, let expiresAt = pricing.expiresAt, expiresAt <= pricing.availableAt {
                throw .invalidDates("available_at=\(pricing.availableAt) expires_at=\(expiresAt)")
            }
            // Checked: from here nothing is refused (the model's own checks agree with the ones above).
            var model = state.model
            var redemptionEntry: Int64 = 0
            var modelRedemption: Int64?
            var accrualEntry: Int64 = 0
            var modelAccrual: Int64?
            do throws(LedgerError) {
                if let hold, let holdID = commit.holdID {
                    if redeem > 0 {
                        modelRedemption = try model.redeem(member: memberID, unit: .points, amount: redeem, holdID: hold.modelID).id
                        redemptionEntry = state.nextEntryID
                    } else {
                        try model.release(holdID: hold.modelID)
                    }
                    state.nextEntryID += 1
                    state.holds[holdID]?.state = redeem > 0 ? "committed" : "released"
                } else if redeem > 0 {
                    modelRedemption = try model.redeem(member: memberID, unit: .points, amount: redeem).id
                    redemptionEntry = state.nextEntryID
                    state.nextEntryID += 1
                }
                // A paid purchase that earned nothing still gets its accrual entry (it carries the spend): no lot.
                if pricing.award > 0 || pricing.spendMinor > 0 {
                    if pricing.award > 0 {
                        modelAccrual = try model.accrue(
                            member: memberID, unit: pricing.unit, amount: pricing.award, availableAt: pricing.availableAt,
                            expiresAt: pricing.expiresAt, now: now).id
                    }
                    accrualEntry = state.nextEntryID
                    state.nextEntryID += 1
                }
            } catch {
                throw storeError(error)
            }
            state.model = model
            if pricing.spendMinor > 0 { member.spend.append((commit.purchasedAt, pricing.spendMinor)) }
            let tierChange = pricing.spendMinor > 0 ? upgrade(&member, tiers: tiers, now: now) : nil
            if !versionMoved { member.ledgerVersion += 1 }
            state.members[memberID] = member
            state.purchases[PurchaseKey(terminalID: commit.terminalID, posTransactionID: commit.posTransactionID)] = Purchase(
                member: memberID, unit: pricing.unit, hasAccrualEntry: accrualEntry != 0, modelAccrual: modelAccrual,
                modelRedemption: modelRedemption, awarded: pricing.award, redeemed: redeem, paidTotalMinor: pricing.paidTotalMinor,
                lines: pricing.lines)
            let result = CommitResult(
                accrualEntryId: accrualEntry, redemptionEntryId: redemptionEntry, awarded: pricing.award, redeemed: redeem,
                unit: pricing.unit, rulesVersion: pricing.rulesVersion, tierChange: tierChange, points: points(memberID, in: state),
                lines: pricing.lines, replayed: false)
            state.keys[key] = Stored(hash: hash, answer: .commit(result, member: memberID))
            return .success(CommitAnswer(result: result, member: try existingRow(memberID, in: state)))
        } catch {
            return .failure(error)
        }
    }

    /// The highest tier above the member's whose threshold its spend over that tier's window reaches, as the
    /// purchase that crosses it upgrades (the SQL's bound only decides when to look; the exact check decides).
    static func upgrade(_ member: inout Member, tiers: [Tier], now: Date) -> TierChange? {
        let records = member.spend
        func spend(windowDays: Int) -> Int64 {
            let start = now.addingTimeInterval(-Double(windowDays) * 86_400)
            return records.filter { $0.at > start && $0.at <= now }.reduce(0) { $0 + $1.minor }
        }
        let rank = member.tier.rank
        guard let best = tiers.filter({ $0.rank > rank && spend(windowDays: $0.qualificationWindowDays) >= $0.qualificationSpendMinor })
            .max(by: { $0.rank < $1.rank })
        else { return nil }
        let reached = spend(windowDays: best.qualificationWindowDays)
        let change = TierChange(
            from: member.tier.code, to: best.code,
            reason: "upgrade: spend \(reached) over \(best.qualificationWindowDays) days reached \(best.qualificationSpendMinor)")
        member.tier = best
        return change
    }

    // MARK: Refunds and voids (checkout_refund_apply, checkout_reverse)

    /// Takes back `reverse` of the purchase's award and pays back `restore` of its redemption; the refunded money
    /// lowers the member's spend once. Answers the award that could not be recovered (already spent).
    static func takeBack(
        _ purchase: inout Purchase, reverse: Int64, restore: Int64, refundedMinor: Int64, now: Date, state: inout State
    ) throws(LedgerStoreError) -> Int64 {
        guard reverse >= 0, restore >= 0, refundedMinor >= 0 else {
            throw .invalidAmount("reverse=\(reverse) restore=\(restore) refunded_minor=\(refundedMinor)")
        }
        var model = state.model
        var unrecovered: Int64 = 0
        var wroteEntry = false
        do {
            if reverse > 0 {
                guard let accrual = purchase.modelAccrual else { throw LedgerStoreError.unknownEntry(0) }
                unrecovered = try model.reverseAccrual(entryID: accrual, amount: reverse).unrecoveredAmount
                wroteEntry = true
            }
            if restore > 0 {
                guard let redemption = purchase.modelRedemption else { throw LedgerStoreError.unknownEntry(0) }
                try model.reverseRedemption(entryID: redemption, amount: restore)
                wroteEntry = true
            }
        } catch let error as LedgerError {
            throw storeError(error)
        } catch let error as LedgerStoreError {
            throw error
        } catch {
            throw .invariantViolated("\(error)")
        }
        state.model = model
        // On the first reversal written, or on a reversal of 0 of the accrual when nothing was taken back.
        if refundedMinor > 0, wroteEntry || purchase.hasAccrualEntry {
            state.members[purchase.member]?.spend.append((now, -refundedMinor))
        }
        return unrecovered
    }

    // MARK: Plumbing

    /// The stored answer of a key, nil when there is none; `idempotencyConflict` when it was another request.
    static func stored(_ key: IdempotencyKey, hash: [UInt8], in state: State) throws(LedgerStoreError) -> Stored? {
        guard let stored = state.keys[key] else { return nil }
        guard stored.hash == hash else { throw .idempotencyConflict(scope: key.scope, key: key.key) }
        return stored
    }

    static func otherAnswer(_ key: IdempotencyKey) -> LedgerStoreError {
        .invariantViolated("key \(key.key) of \(key.scope) holds another operation's answer")
    }

    static func activeMember(_ memberID: Int64, in state: State) throws(LedgerStoreError) -> Member {
        guard let member = state.members[memberID] else { throw .unknownMember(memberID) }
        guard member.status == "active" else { throw .memberNotActive(memberID: memberID, status: member.status) }
        return member
    }

    static func existingRow(_ memberID: Int64, in state: State) throws(LedgerStoreError) -> CheckoutMemberRow {
        guard let row = row(memberID, in: state) else { throw .unknownMember(memberID) }
        return row
    }

    static func row(_ memberID: Int64, in state: State) -> CheckoutMemberRow? {
        guard let member = state.members[memberID] else { return nil }
        let cashback = state.model.balances(member: memberID, unit: .cashbackMinor)
        return CheckoutMemberRow(
            memberID: memberID, ledgerVersion: member.ledgerVersion, tierCode: member.tier.code, tierName: member.tier.name,
            status: member.status, cardNumber: nil, phone: nil, points: points(memberID, in: state),
            cashbackMinor: MemberBalances(available: cashback.available, pending: cashback.pending, held: cashback.held))
    }

    static func points(_ memberID: Int64, in state: State) -> MemberBalances {
        let points = state.model.balances(member: memberID, unit: .points)
        return MemberBalances(available: points.available, pending: points.pending, held: points.held)
    }

    /// Random like the SQL's (below 2^53, bit 40 set), so a test cannot lean on ids counting up.
    static func randomHoldID(taken: [Int64: Hold]) -> Int64 {
        while true {
            let id = Int64.random(in: 0..<(1 << 53)) | (1 << 40)
            if taken[id] == nil { return id }
        }
    }

    /// A model refusal as the SQL raises it. The checks above come first, so this is a bug when it happens.
    static func storeError(_ error: LedgerError) -> LedgerStoreError {
        switch error {
        case .nonPositiveAmount(let amount): .invalidAmount("amount=\(amount)")
        case .overflow: .invalidAmount("overflow")
        case .unknownMember(let id): .unknownMember(id)
        case .insufficientBalance(let requested, let available): .insufficientBalance(bucket: "available", requested: requested, available: available)
        case .unknownHold(let id): .unknownHold(id)
        case .holdMismatch(let id): .holdMismatch(holdID: id)
        case .holdNotActive(let id, let state): .holdNotActive(holdID: id, state: state)
        case .holdExceeded(let requested, let held): .holdExceeded(holdID: 0, requested: requested, held: held)
        case .unknownEntry(let id): .unknownEntry(id)
        case .notReversible(let id, let kind): .notReversible(entryID: id, kind: kind)
        case .reversalExceedsRemaining(let requested, let remaining): .reversalExceedsRemaining(entryID: 0, requested: requested, remaining: remaining)
        case .invalidDates(let text): .invalidDates(text)
        }
    }
}
