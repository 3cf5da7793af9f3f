import ArgumentParser
import Foundation
import LoyaltyRules

struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules", abstract: "Work with the program's rules files.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the rules files; errors name file, line and field. Exit 1 on any error.")

        @Argument(help: "Rules folder (default: LOYALTY_RULES_DIR or rules).")
        var directory: String?

        func run() async throws {
            let path = directory ?? environment("LOYALTY_RULES_DIR") ?? "rules"
            do {
                let loaded = try RulesLoader.load(directory: URL(fileURLWithPath: path))
                print("rules in \(path) are valid: program '\(loaded.ruleSet.name)', version \(loaded.version), files \(loaded.files.joined(separator: ", "))")
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
