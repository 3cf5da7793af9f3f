import Foundation
import LoyaltyCore
import Testing

/// A small, fast, seeded generator (SplitMix64), so every random test run is reproducible from its seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random ledger operations over members 1–3 (and sometimes unknown member 4), both units, with time advancing.
/// Amounts and ids are sometimes out of range on purpose, so errors are exercised too.
struct RandomLedgerRun {
    var model = LedgerFixture.model()
    var now = LedgerFixture.start
    var generator: SplitMix64

    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &generator) < percent }
    mutating func int(_ range: ClosedRange<Int64>) -> Int64 { Int64.random(in: range, using: &generator) }
    mutating func days(_ range: ClosedRange<Double>) -> Date {
        now.addingTimeInterval(Double.random(in: range, using: &generator) * 86_400)
    }

    mutating func member() -> Int64 { chance(3) ? 4 : int(1...3) }
    mutating func unit() -> LedgerUnit { chance(50) ? .points : .cashbackMinor }
    /// Usually a valid positive amount; sometimes zero or negative.
    mutating func amount(upTo limit: Int64) -> Int64 { chance(4) ? int(-2...0) : int(1...max(1, limit)) }
    mutating func entryID(preferring kind: LedgerEntryKind) -> Int64 {
        let candidates = model.entries.filter { $0.kind == kind }.map(\.id)
        if !candidates.isEmpty, chance(85) { return candidates[Int(int(0...Int64(candidates.count - 1)))] }
        return int(0...Int64(model.entries.count + 1))
    }

    /// One random operation: its name and the entries it created (empty when refused).
    mutating func step() -> (name: String, entries: [LedgerEntry], error: LedgerError?) {
        let choice = int(0...99)
        do {
            switch choice {
            case 0..<22:
                let availableAt = days(-2...4)
                let expiresAt: Date? = chance(30) ? nil : availableAt.addingTimeInterval(
                    Double(int(-1...25)) * 86_400) // sometimes not after availableAt: invalidDates
                let (member, unit) = (member(), unit())
                return ("accrue", [try model.accrue(member: member, unit: unit, amount: amount(upTo: 1_000),
                                                    availableAt: availableAt, expiresAt: expiresAt, now: now)], nil)
            case 22..<30:
                return ("activateDue", model.activateDue(now: now), nil)
            case 30..<42:
                let (member, unit) = (member(), unit())
                let limit = model.balances(member: member, unit: unit).available + 20
                return ("hold", [try model.hold(member: member, unit: unit, amount: amount(upTo: limit),
                                                expiresAt: days(0...1))], nil)
            case 42..<48:
                return ("release", [try model.release(holdID: int(0...Int64(model.holds.count + 1)))], nil)
            case 48..<62:
                let (member, unit) = (member(), unit())
                let limit = model.balances(member: member, unit: unit).available + 20
                return ("redeem", [try model.redeem(member: member, unit: unit, amount: amount(upTo: limit))], nil)
            case 62..<70:
                // Redeem through one of the member's holds (or a random, possibly wrong, hold id).
                let active = model.holds.filter { $0.state == .active }
                guard let hold = active.isEmpty || chance(10) ? nil : active[Int(int(0...Int64(active.count - 1)))]
                else {
                    let id = int(0...Int64(model.holds.count + 1))
                    return ("redeem(hold)", [try model.redeem(member: member(), unit: unit(), amount: int(1...50),
                                                              holdID: id)], nil)
                }
                return ("redeem(hold)", [try model.redeem(member: hold.member, unit: hold.unit,
                                                          amount: amount(upTo: hold.amount + 5),
                                                          holdID: hold.id)], nil)
            case 70..<78:
                let id = entryID(preferring: .accrual)
                let left = (model.entry(id: id)?.amount ?? 10) - model.reversedAmount(entryID: id)
                return ("reverseAccrual", [try model.reverseAccrual(entryID: id, amount: amount(upTo: left + 2))], nil)
            case 78..<85:
                let id = entryID(preferring: .redemption)
                let left = (model.entry(id: id)?.amount ?? 10) - model.reversedAmount(entryID: id)
                return ("reverseRedemption",
                        [try model.reverseRedemption(entryID: id, amount: amount(upTo: left + 2))], nil)
            case 85..<91:
                return ("expireDue", try model.expireDue(now: now), nil)
            case 91..<96:
                let (member, unit) = (member(), unit())
                let available = model.balances(member: member, unit: unit).available
                let delta = chance(50) ? amount(upTo: 500) : -amount(upTo: available + 10)
                let expiresAt: Date? = chance(50) ? nil : days(-1...30)
                return ("adjust", [try model.adjust(member: member, unit: unit, delta: delta, reason: "test",
                                                    actor: "property", now: now, expiresAt: expiresAt)], nil)
            default:
                now = days(0...3)
                return ("advance", [], nil)
            }
        } catch {
            return ("refused", [], error) // typed: the operations throw only LedgerError
        }
    }
}

@Suite("Ledger model: properties over random operation sequences")
struct LedgerPropertyTests {
    /// Everything that must hold after any operation. Returns the problems found (empty when fine).
    static func violations(of model: LedgerModel, after newEntries: [LedgerEntry]) -> [String] {
        var problems = model.checkInvariants()
        for unit in LedgerUnit.allCases {
            var total: Int64 = 0
            for bucket in LedgerBucket.allCases where !bucket.isMemberBucket {
                total += model.systemBalance(bucket: bucket, unit: unit)
            }
            for member in model.members {
                let balances = model.balances(member: member, unit: unit)
                if balances.available < 0 || balances.pending < 0 || balances.held < 0 {
                    problems.append("member \(member) has a negative balance: \(balances)")
                }
                total += balances.available + balances.pending + balances.held
            }
            if total != 0 { problems.append("\(unit.rawValue): system + member balances = \(total)") }
        }
        for entry in newEntries where entry.kind == .redemption || (entry.kind == .adjustment && entry.lotID == nil) {
            problems += spendingOrderViolations(entry, in: model)
        }
        return problems
    }

    /// A spending entry must list its lots in spending order, and must not have skipped a spendable lot that comes
    /// before the last lot it took from.
    static func spendingOrderViolations(_ entry: LedgerEntry, in model: LedgerModel) -> [String] {
        let lots = entry.consumption.compactMap { model.lot(id: $0.lotID) }
        var problems: [String] = []
        if Set(lots.map(\.id)).count != lots.count { problems.append("entry \(entry.id) takes a lot twice") }
        for (earlier, later) in zip(lots, lots.dropFirst()) where !LedgerLot.spendsBefore(earlier, later) {
            problems.append("entry \(entry.id): lot \(earlier.id) listed before lot \(later.id)")
        }
        if entry.consumption.reduce(0, { $0 + $1.amount }) != entry.amount {
            problems.append("entry \(entry.id): consumption does not add up to \(entry.amount)")
        }
        if let last = lots.last {
            for lot in model.lots(member: entry.member) where lot.unit == entry.unit && lot.state == .available
                && lot.remaining > 0 && lot.id != last.id && LedgerLot.spendsBefore(lot, last) {
                problems.append("entry \(entry.id) skipped lot \(lot.id), which expires sooner than lot \(last.id)")
            }
        }
        return problems
    }

    @Test("200 random operations keep every invariant, and refused ones change nothing", arguments: 0..<200)
    func randomSequences(seed: UInt64) {
        var run = RandomLedgerRun(seed: seed)
        var refused = 0
        for index in 0..<200 {
            let before = run.model
            let (name, entries, error) = run.step()
            if error != nil {
                refused += 1
                guard run.model == before else {
                    Issue.record("seed \(seed) step \(index): refused \(error!) but the model changed")
                    return
                }
            }
            let problems = Self.violations(of: run.model, after: entries)
            guard problems.isEmpty else {
                Issue.record("seed \(seed) step \(index) (\(name)): \(problems.joined(separator: "; "))")
                return
            }
        }
        // The generator should exercise both outcomes.
        #expect(refused > 0 && refused < 200)
        #expect(run.model.entries.count > 20)
    }

    @Test("the same seed gives the same ledger")
    func deterministic() {
        var first = RandomLedgerRun(seed: 99)
        var second = RandomLedgerRun(seed: 99)
        for _ in 0..<300 {
            _ = first.step()
            _ = second.step()
        }
        #expect(first.model == second.model)
        #expect(!first.model.entries.isEmpty)
    }

    @Test("the random runs reach every kind of entry and every error")
    func coverage() {
        var kinds: Set<LedgerEntryKind> = []
        var errors: Set<String> = []
        for seed in UInt64(0)..<40 {
            var run = RandomLedgerRun(seed: seed)
            for _ in 0..<200 {
                let (_, entries, error) = run.step()
                kinds.formUnion(entries.map(\.kind))
                // The case name: the label of the payload, or the case itself when it has none.
                if let error { errors.insert(Mirror(reflecting: error).children.first?.label ?? "\(error)") }
            }
        }
        #expect(kinds == Set(LedgerEntryKind.allCases))
        // Overflow needs amounts near Int64.max, which the random amounts never reach; the worked examples cover it.
        #expect(errors.count == 11, "\(errors.sorted())")
    }
}
