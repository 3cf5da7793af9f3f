import Foundation
import NIOCore
import POSProtocol
import SwiftProtobuf

/// One simulated till: its own terminal, its own members (no other till touches them, so its journal alone
/// predicts their balances), one checkout at a time. Every write is journaled with its id before it is sent.
final class ChaosTill {
    /// A purchase this till committed, kept for later voids and partial refunds.
    struct RecentCommit {
        let txn: String
        let memberID: Int64
        let unit: String
        /// line id → quantity bought.
        let lines: [(String, Int64)]
        var returned: [String: Int64] = [:]
        var refunds = 0
    }

    static let recentLimit = 16
    static let minimumRedeemPoints: Int64 = 500  // rules/program.yaml redemption.minimum_points
    static let maximumRedeemPoints: Int64 = 1_500

    let index: Int
    let terminalID: String
    let members: [Int64]
    let runID: String
    let counters: ChaosCounters
    private let link: ChaosLink
    private(set) var journal: [ChaosOperation] = []
    private var recent: [RecentCommit] = []
    private var sequence = 0

    init(index: Int, members: [Int64], runID: String, settings: ChaosLinkSettings, counters: ChaosCounters) {
        self.index = index
        self.terminalID = "lt-\(index)"
        self.members = members
        self.runID = runID
        self.counters = counters
        self.link = ChaosLink(terminalID: terminalID, settings: settings, counters: counters)
    }

    /// Starts checkouts until `until`; the one in progress then finishes (resending until answered or the hard stop).
    func run(until: ContinuousClock.Instant) async -> [ChaosOperation] {
        while ContinuousClock.now < until, let member = members.randomElement() {
            switch Int.random(in: 0..<100) {
            case 0..<40: await checkout(member, redeem: .none)
            case 40..<55: await checkout(member, redeem: .fromHold)
            case 55..<62: await checkout(member, redeem: .fromAvailable)
            case 62..<72: await abandonedCheckout(member)
            case 72..<84: if !(await voidRecent()) { await checkout(member, redeem: .none) }
            default: if !(await refundRecent()) { await checkout(member, redeem: .none) }
            }
        }
        await link.close()
        return journal
    }

    var lastError: String { link.lastError }

    // MARK: Flows

    enum Redeem { case none, fromHold, fromAvailable }

    /// Commit with earn; with `redeem`, a basket that may be paid partly with points, priced by a Quote first.
    private func checkout(_ member: Int64, redeem: Redeem) async {
        let txn = nextID()
        var basket = LoadRunner.basket()
        var redeemPoints: Int64 = 0
        var holdID: Int64 = 0
        if redeem != .none {
            basket.lines.append(.with {
                $0.lineID = "9"
                $0.sku = "4311501445107"
                $0.category = "household"
                $0.quantity = Int64.random(in: 1...2)
                $0.unitPriceMinor = 2_495
            })
            var quote = Loyalty_Pos_V1_QuoteRequest()
            quote.memberID = member
            quote.basket = basket
            counters.readsSent.bump()
            if case .ok(let payload) = await link.send(.quote, quote).0,
               let answer = try? Loyalty_Pos_V1_QuoteResponse(serializedBytes: Array(buffer: payload)),
               answer.maxRedeemablePoints >= Self.minimumRedeemPoints {
                redeemPoints = Int64.random(in: Self.minimumRedeemPoints...min(answer.maxRedeemablePoints, Self.maximumRedeemPoints))
            }
        }
        if redeem == .fromHold, redeemPoints > 0 {
            var hold = Loyalty_Pos_V1_HoldRequest()
            hold.posTransactionID = txn
            hold.memberID = member
            hold.points = redeemPoints
            let held = await write(.hold, id: txn, member: member, method: .hold, hold) { (answer: Loyalty_Pos_V1_HoldResponse) in
                ChaosAck(holdID: answer.holdID, holdPoints: redeemPoints)
            }
            guard let held else { return }  // refused (e.g. insufficient balance) or unresolved: no checkout
            holdID = held.holdID
        }
        var commit = Loyalty_Pos_V1_CommitRequest()
        commit.posTransactionID = txn
        commit.memberID = member
        commit.basket = basket
        commit.holdID = holdID
        commit.redeemPoints = redeemPoints
        let outcome = await writeOutcome(.commit, id: txn, member: member, method: .commit, commit) { (answer: Loyalty_Pos_V1_CommitResponse) in
            ChaosAck(replayed: answer.replayed, unit: answer.unit, awarded: answer.awarded, redeemed: answer.redeemed,
                     accrualEntryID: answer.accrualEntryID, redemptionEntryID: answer.redemptionEntryID)
        }
        switch outcome {
        case .acknowledged(let ack):
            recent.append(RecentCommit(txn: txn, memberID: member, unit: ack.unit, lines: basket.lines.map { ($0.lineID, $0.quantity) }))
            if recent.count > Self.recentLimit { recent.removeFirst() }
        case .refused where holdID != 0:
            await cancel(txn, member: member, unit: "points")  // give the hold of a failed checkout back
        default:
            break
        }
    }

    /// A customer walks away after points were reserved: hold, then cancel.
    private func abandonedCheckout(_ member: Int64) async {
        let txn = nextID()
        var hold = Loyalty_Pos_V1_HoldRequest()
        hold.posTransactionID = txn
        hold.memberID = member
        hold.points = Int64.random(in: 500...800)  // at least the shipped rules' minimum_points
        let points = hold.points
        let held = await write(.hold, id: txn, member: member, method: .hold, hold) { (answer: Loyalty_Pos_V1_HoldResponse) in
            ChaosAck(holdID: answer.holdID, holdPoints: points)
        }
        if held != nil { await cancel(txn, member: member, unit: "points") }
    }

    /// Voids one of this till's recent purchases. False when there is none.
    private func voidRecent() async -> Bool {
        guard !recent.isEmpty else { return false }
        let purchase = recent.remove(at: Int.random(in: 0..<recent.count))
        await cancel(purchase.txn, member: purchase.memberID, unit: purchase.unit)
        return true
    }

    /// Returns one unit of one line of a recent purchase not yet fully returned. False when there is none.
    private func refundRecent() async -> Bool {
        let candidates = recent.indices.filter { i in recent[i].lines.contains { recent[i].returned[$0.0, default: 0] < $0.1 } }
        guard let position = candidates.randomElement() else { return false }
        let purchase = recent[position]
        guard let line = purchase.lines.filter({ purchase.returned[$0.0, default: 0] < $0.1 }).randomElement() else { return false }
        let refundID = "\(purchase.txn)-r\(purchase.refunds + 1)"
        recent[position].refunds += 1
        var refund = Loyalty_Pos_V1_RefundRequest()
        refund.refundID = refundID
        refund.originalPosTransactionID = purchase.txn
        refund.lines = [.with { $0.lineID = line.0; $0.quantity = 1 }]
        let ack = await write(.refund, id: refundID, member: purchase.memberID, method: .refund, refund) { (answer: Loyalty_Pos_V1_RefundResponse) in
            ChaosAck(replayed: answer.replayed, unit: answer.unit, awardReversed: answer.awardReversed,
                     awardUnrecovered: answer.awardUnrecovered, pointsRestored: answer.pointsRestored, originalID: purchase.txn)
        }
        if ack != nil { recent[position].returned[line.0, default: 0] += 1 }
        return true
    }

    private func cancel(_ txn: String, member: Int64, unit: String) async {
        var request = Loyalty_Pos_V1_CancelRequest()
        request.posTransactionID = txn
        _ = await write(.cancel, id: txn, member: member, method: .cancel, request) { (answer: Loyalty_Pos_V1_CancelResponse) in
            ChaosAck(replayed: answer.replayed, unit: unit, awardReversed: answer.awardReversed,
                     pointsRestored: answer.pointsRestored, cancelled: answer.cancelled, originalID: txn)
        }
    }

    // MARK: Journal

    private func nextID() -> String {
        sequence += 1
        return "\(runID)-t\(index)-\(sequence)"
    }

    private func write<Response: SwiftProtobuf.Message>(
        _ kind: ChaosOperation.Kind, id: String, member: Int64, method: Loyalty_Pos_V1_Method, _ request: some SwiftProtobuf.Message,
        ack: (Response) -> ChaosAck
    ) async -> ChaosAck? {
        if case .acknowledged(let value) = await writeOutcome(kind, id: id, member: member, method: method, request, ack: ack) { return value }
        return nil
    }

    /// Journals the operation, sends it until it has a final answer, and journals that answer.
    private func writeOutcome<Response: SwiftProtobuf.Message>(
        _ kind: ChaosOperation.Kind, id: String, member: Int64, method: Loyalty_Pos_V1_Method, _ request: some SwiftProtobuf.Message,
        ack: (Response) -> ChaosAck
    ) async -> ChaosOperation.Outcome {
        var operation = ChaosOperation(kind: kind, terminalID: terminalID, id: id, memberID: member)
        counters.operationsSent.bump()
        let (answer, attempts) = await link.send(method, request)
        operation.attempts = attempts
        operation.answeredAt = Date()
        if attempts > 1 { counters.retriedOperations.bump() }
        switch answer {
        case .ok(let payload):
            if let decoded = try? Response(serializedBytes: Array(buffer: payload)) {
                let value = ack(decoded)
                operation.outcome = .acknowledged(value)
                counters.acknowledged.bump()
                if value.replayed { counters.replayedAnswers.bump() }
            } else {
                FileHandle.standardError.write(Data("[chaos] \(terminalID): undecodable \(kind.rawValue) answer for \(id)\n".utf8))
            }
        case .refused(let code):
            operation.outcome = .refused(code)
            counters.refused.bump()
        case .unresolved:
            FileHandle.standardError.write(Data("[chaos] \(terminalID): \(kind.rawValue) \(id) unanswered at the hard stop (\(link.lastError))\n".utf8))
        }
        journal.append(operation)
        return operation.outcome
    }
}
