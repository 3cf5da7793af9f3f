import Foundation
import POSProtocol

/// After the run, every member looked up through the server (from Redis where cached): the balance a till would
/// display must be the ledger's, so no write lost during a Redis or server outage left a stale cache entry.
struct ChaosLookups {
    let settings: ChaosLinkSettings
    let members: [Int64]
    /// Lookups that fail transiently are resent; the whole check is bounded.
    static let boundS = 120

    func check(against ledger: [ChaosModel.Key: Int64]) async -> ChaosCheck {
        var check = ChaosCheck(name: "lookups through the server = ledger")
        var bounded = settings
        bounded.hardStop = ContinuousClock.now + .seconds(Self.boundS)
        let link = ChaosLink(terminalID: "lt-0", settings: bounded, counters: ChaosCounters())
        var fromCache = 0
        for member in members {
            var request = Loyalty_Pos_V1_LookupRequest()
            request.memberID = member
            let (answer, _) = await link.send(.lookup, request)
            guard case .ok(let payload) = answer, let summary = try? Loyalty_Pos_V1_MemberSummary(serializedBytes: Array(buffer: payload)) else {
                check.fail("member \(member): lookup answered \(answer)")
                continue
            }
            if summary.fromCache { fromCache += 1 }
            let shown = summary.points.available + summary.points.pending + summary.points.held
            let truth = ledger[ChaosModel.Key(memberID: member, unit: "points")] ?? 0
            if shown != truth { check.fail("member \(member): lookup shows \(shown) points\(summary.fromCache ? " (cache)" : ""), ledger \(truth)") }
        }
        await link.close()
        log("looked up \(members.count) members through the server, \(fromCache) answered from the cache")
        return check
    }
}
