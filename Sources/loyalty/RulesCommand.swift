import ArgumentParser
import Foundation
import LoyaltyCore
import LoyaltyRules
import LoyaltyStore

struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules", abstract: "Work with the program's rules files.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the rules files; errors name file, line and field. Exit 1 on any error.",
            discussion: """
                With a database (--database-url or LOYALTY_DATABASE_URL), also compares the tiers the rules give earn \
                rates to with the database's tier ladder and prints a warning line naming each tier one has and the \
                other lacks. Warnings do not change the exit code.
                """)

        @Argument(help: "Rules folder (default: LOYALTY_RULES_DIR or rules).")
        var directory: String?

        @Option(name: .customLong("database-url"), help: "PostgreSQL URL whose tier ladder to compare with (env LOYALTY_DATABASE_URL; without one, only the files are checked).")
        var databaseURL: String?

        func run() async throws {
            let path = directory ?? environment("LOYALTY_RULES_DIR") ?? "rules"
            let loaded: LoadedRules
            do {
                loaded = try RulesLoader.load(directory: URL(fileURLWithPath: path))
                print("rules in \(path) are valid: program '\(loaded.ruleSet.name)', version \(loaded.version), files \(loaded.files.joined(separator: ", "))")
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(1)
            }
            guard let urlText = databaseURL ?? environment("LOYALTY_DATABASE_URL") else { return }
            try await failingCleanly {
                let url = try DatabaseURL(urlText)
                let logger = makeLogger("rules")
                let codes: [String]
                do {
                    codes = try await withPostgres(url, logger: logger) { client in
                        try await TierStore(client: client, logger: logger).list().map(\.code)
                    }
                } catch {
                    let reason = "could not read the tier ladder from \(url) (\(PostgresErrorText.describe(error))); is it running and migrated?"
                    // Asked for by flag: a failure to compare is an error. Only found in the environment: the files
                    // were checked as before, so say so and keep the exit code.
                    guard databaseURL == nil else { throw CommandFailure(reason) }
                    print("warning: tiers not compared: \(reason)")
                    return
                }
                let coverage = TierCoverage(rules: loaded.ruleSet, ladderCodes: codes)
                if coverage.isConsistent {
                    print("the tier ladder in \(url) has exactly the tiers the rules name: \(codes.sorted().joined(separator: ", "))")
                }
                for warning in coverage.warnings { print("warning: \(warning)") }
            }
        }
    }
}
