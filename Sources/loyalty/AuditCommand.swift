import ArgumentParser
import Foundation
import LoyaltyStore

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Rebuild balances from postings and check every ledger invariant; exit 1 on any violation.")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        var clean = true
        try await failingCleanly {
            let url = try DatabaseURL(try database.resolvedDatabaseURL())
            let logger = makeLogger("audit")
            let report = try await withPostgres(url, logger: logger) { client in
                try await LedgerAudit(client: client, logger: logger).run { line in
                    FileHandle.standardError.write(Data("\(line)\n".utf8))
                }
            }
            print("audited \(report.entries) entries and \(report.postings) postings of \(url)")
            for check in report.checks {
                let mark = check.violations == 0 ? "ok  " : "FAIL"
                var line = "\(mark) \(check.name)"
                if check.violations > 0 {
                    line += ": \(check.violations) violations (e.g. \(check.samples.joined(separator: ", ")))"
                }
                print(line)
            }
            clean = report.isClean
            print(clean ? "ledger is consistent" : "ledger has violations: stop writes and investigate")
        }
        if !clean { throw ExitCode(1) }
    }
}
