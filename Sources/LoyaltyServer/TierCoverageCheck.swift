import Logging
import LoyaltyCore
import LoyaltyStore

/// At start, names the tiers the rules give rates to that the database's ladder lacks, and the reverse (see
/// `TierCoverage`). Only a warning: the server runs either way, and a failed read is logged, not fatal.
enum TierCoverageCheck {
    static func log(rules: RuleSet, tiers: TierStore, logger: Logger) async {
        do {
            let codes = try await tiers.list().map(\.code)
            let coverage = TierCoverage(rules: rules, ladderCodes: codes)
            if coverage.isConsistent {
                logger.info("tier ladder matches the rules", metadata: ["tiers": "\(codes.sorted().joined(separator: ","))"])
            }
            for warning in coverage.warnings {
                logger.warning("\(warning)", metadata: [
                    "missing_from_ladder": "\(coverage.missingFromLadder.joined(separator: ","))",
                    "not_in_rules": "\(coverage.notInRules.joined(separator: ","))",
                ])
            }
        } catch {
            logger.warning("could not compare the rules' tiers with the tier ladder", metadata: ["error": "\(PostgresErrorText.describe(error))"])
        }
    }
}
