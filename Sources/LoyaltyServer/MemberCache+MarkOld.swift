import Logging
import LoyaltyCache

extension MemberCache {
    /// Marks the members' cached snapshots as older than their new ledger versions, after a batch job changed
    /// their balances in SQL without a snapshot at hand: one script call per batch (see `invalidate(_:)`), not one
    /// command per member. A failure only costs a miss later (the cache moves to a new epoch after an outage), so
    /// it is logged, not retried.
    func markOld(_ members: [(memberID: Int64, ledgerVersion: Int64)], logger: Logger) async {
        guard !members.isEmpty else { return }
        do {
            if case .unavailable(let error) = try await invalidate(members) {
                logger.warning("member cache refused marking balances as old", metadata: [
                    "members": "\(members.count)", "error": "\(error)",
                ])
            }
        } catch {
            logger.warning("member cache refused marking balances as old: a member id or version is out of range", metadata: [
                "members": "\(members.count)", "error": "\(error)",
            ])
        }
    }
}
