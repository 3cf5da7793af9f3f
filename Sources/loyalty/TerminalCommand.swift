import ArgumentParser
import Foundation
import LoyaltyStore
import POSProtocol

struct TerminalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "terminal", abstract: "Register POS terminals and rotate or disable their secrets.",
        subcommands: [Register.self, Disable.self])

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a terminal (or rotate its secret) and print the new secret once.",
            discussion: """
                Only derived keys are stored; the secret cannot be shown again. Configure it on the till now.
                With --json, stdout is one JSON object for scripts: {"secret": "...", "store_id": "...", "terminal_id": "..."}.
                """)

        @OptionGroup var database: DatabaseOptions
        @Option(name: .customLong("id"), help: "Terminal id (1-64 of A-Z a-z 0-9 _ . -).") var terminalID: String
        @Option(name: .customLong("store"), help: "Store the terminal belongs to.") var storeID: String
        @Flag(name: .customLong("json"), help: "Print terminal id, store id and secret as one JSON object instead of text.")
        var json = false

        func run() async throws {
            try await failingCleanly {
                let url = try DatabaseURL(try database.resolvedDatabaseURL())
                let secret = TerminalAuth.randomBytes(32)
                let credentials = TerminalAuth.credentials(secret: secret)
                let logger = makeLogger("terminal")
                let terminalID = self.terminalID, storeID = self.storeID
                try await withPostgres(url, logger: logger) { client in
                    try await TerminalStore(client: client, logger: logger).save(
                        terminalID: terminalID, storeID: storeID, salt: credentials.salt, iterations: credentials.iterations,
                        storedKey: credentials.storedKey, serverKey: credentials.serverKey)
                }
                let secretText = Data(secret).base64EncodedString()
                if json {
                    print(try RegisteredTerminal(terminalID: terminalID, storeID: storeID, secret: secretText).jsonLine())
                } else {
                    print("terminal \(terminalID) of store \(storeID) registered; its secret (shown once):")
                    print(secretText)
                }
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a terminal: its next Hello fails.")
        @OptionGroup var database: DatabaseOptions
        @Option(name: .customLong("id")) var terminalID: String

        func run() async throws {
            try await failingCleanly {
                let url = try DatabaseURL(try database.resolvedDatabaseURL())
                let logger = makeLogger("terminal")
                let terminalID = self.terminalID
                try await withPostgres(url, logger: logger) { client in
                    try await TerminalStore(client: client, logger: logger).disable(terminalID: terminalID)
                }
                print("terminal \(terminalID) disabled")
            }
        }
    }
}

/// What `terminal register --json` prints: one line of JSON, keys sorted, for automation.
struct RegisteredTerminal: Encodable {
    var terminalID: String
    var storeID: String
    var secret: String

    enum CodingKeys: String, CodingKey {
        case terminalID = "terminal_id", storeID = "store_id", secret
    }

    func jsonLine() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
