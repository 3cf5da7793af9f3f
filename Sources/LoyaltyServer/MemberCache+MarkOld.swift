import Logging
import LoyaltyCache

extension MemberCache {
    /// Invalidations in flight at once (pipelined on the Redis connection).
    static let maximumMarksInFlight = 32

    /// Marks the members' cached snapshots as older than their new ledger versions, after a batch job changed
    /// their balances in SQL without a snapshot at hand. A failure only costs a miss later (the cache moves to a
    /// new epoch after an outage), so it is logged, not retried.
    func markOld(_ members: [(memberID: Int64, ledgerVersion: Int64)], logger: Logger) async {
        guard !members.isEmpty else { return }
        var failures = 0
        await withTaskGroup(of: Bool.self) { group in
            var next = 0
            func addNext() {
                let member = members[next]
                next += 1
                group.addTask {
                    // A stale skip is fine (Redis holds something newer); an outage is a failure to report.
                    do {
                        let outcome = try await self.invalidate(memberID: member.memberID, ledgerVersion: member.ledgerVersion)
                        if case .unavailable = outcome { return false }
                        return true
                    } catch { return false }
                }
            }
            while next < min(members.count, Self.maximumMarksInFlight) { addNext() }
            for await ok in group {
                if !ok { failures += 1 }
                if next < members.count { addNext() }
            }
        }
        if failures > 0 {
            logger.warning("member cache refused marking balances as old", metadata: ["members": "\(failures)"])
        }
    }
}
