import ArgumentParser
import Foundation
import LoyaltyStore

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create and revoke bearer tokens for the admin HTTP API.",
        subcommands: [Create.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an admin API token and print it once.",
            discussion: "Only its SHA-256 is stored; the token cannot be shown again. Roles: admin, marketer, support, readonly.")

        @OptionGroup var database: DatabaseOptions
        @Option(name: .customLong("role"), help: "admin, marketer, support or readonly.") var role: String
        @Option(name: .customLong("name"), help: "Who or what uses the token (recorded in the audit log).") var name: String
        @Option(name: .customLong("expires-in-days"), help: "Expire after this many days (default: never).") var expiresInDays: Int?

        func run() async throws {
            try await failingCleanly {
                guard let role = AdminRole(rawValue: role) else {
                    throw CommandFailure("unknown role '\(role)': use one of \(AdminRole.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                let url = try DatabaseURL(try database.resolvedDatabaseURL())
                let logger = makeLogger("token")
                let name = self.name, expiresInDays = self.expiresInDays
                let created = try await withPostgres(url, logger: logger) { client in
                    try await AdminTokenStore(client: client, logger: logger).create(name: name, role: role, expiresInDays: expiresInDays)
                }
                let expiry = created.expiresAt.map { "expires \($0.formatted(.iso8601))" } ?? "does not expire"
                print("token \(created.tokenID) (\(name), role \(role.rawValue), \(expiry)) created; the token (shown once):")
                print(created.secret.text)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: its next request is refused.")
        @OptionGroup var database: DatabaseOptions
        @Option(name: .customLong("id"), help: "The token id printed by `token create`.") var tokenID: Int64

        func run() async throws {
            try await failingCleanly {
                let url = try DatabaseURL(try database.resolvedDatabaseURL())
                let logger = makeLogger("token")
                let tokenID = self.tokenID
                let revoked = try await withPostgres(url, logger: logger) { client in
                    try await AdminTokenStore(client: client, logger: logger).revoke(tokenID: tokenID)
                }
                guard revoked else { throw CommandFailure("no active token \(tokenID) (unknown or already revoked)") }
                print("token \(tokenID) revoked")
            }
        }
    }
}
