import Foundation
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

/// Runs the built `loyalty` binary (next to the test bundle) against a scratch database.
@Suite("Command line: terminal register --json, rules check against the tier ladder")
struct CommandLineTests {
    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("loyalty")
    }

    /// LOYALTY_DATABASE_URL with its database replaced by `database`.
    static func databaseURLText(_ database: String) throws -> String {
        let base = try #require(ProcessInfo.processInfo.environment["LOYALTY_DATABASE_URL"])
        var components = try #require(URLComponents(string: base))
        components.path = "/\(database)"
        return try #require(components.string)
    }

    static func run(_ arguments: [String], databaseURL: String?) async throws -> Run {
        let binary = Self.binary
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build the loyalty product first: \(binary.path)")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["LOYALTY_DATABASE_URL"] = databaseURL
        environment["LOYALTY_RULES_DIR"] = nil
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting, so a full pipe cannot stall the child.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }

    @Test("terminal register --json prints id, store and secret as one JSON object; the default stays text")
    func terminalRegisterJSON() async throws {
        try await TestServices.withMigratedDatabase { url, client in
            let urlText = try Self.databaseURLText(url.database)
            let run = try await Self.run(["terminal", "register", "--id", "till-9", "--store", "s9", "--json"], databaseURL: urlText)
            #expect(run.status == 0, "\(run.stderr)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: String], "\(run.stdout)")
            #expect(object["terminal_id"] == "till-9" && object["store_id"] == "s9")
            let secret = try #require(object["secret"].flatMap { Data(base64Encoded: $0) })
            #expect(secret.count == 32)
            #expect(run.stdout.split(separator: "\n").count == 1)
            let rows = try await client.query("SELECT store_id FROM terminals WHERE terminal_id = 'till-9'", logger: TestServices.logger)
            var stores: [String] = []
            for try await store in rows.decode(String.self) { stores.append(store) }
            #expect(stores == ["s9"])

            let text = try await Self.run(["terminal", "register", "--id", "till-9", "--store", "s9"], databaseURL: urlText)
            #expect(text.status == 0 && text.stdout.contains("secret (shown once)"), "\(text.stdout)")
        }
    }

    @Test("serve refuses a local cache bound outside 0...64 GiB, naming the flag, before it connects to anything")
    func serveLocalCacheBytesRefused() async throws {
        let redisURL = try TestServices.redisURL()
        for value in ["--local-cache-bytes=-1", "--local-cache-bytes=68719476737", "--local-cache-bytes=lots"] {
            let run = try await Self.run(
                ["serve", "--redis-url", "redis://\(redisURL.host):\(redisURL.port)", value],
                databaseURL: try Self.databaseURLText("loyalty"))
            #expect(run.status != 0)
            #expect(run.stderr.contains("local-cache-bytes"), "\(value): \(run.stderr)")
        }
    }

    @Test("rules check names tiers the rules rate and the ladder lacks, and the reverse; without a database it only validates")
    func rulesCheckTiers() async throws {
        let rules = TestServices.packageRoot.appendingPathComponent("rules").path
        try await TestServices.withMigratedDatabase { url, client in
            let urlText = try Self.databaseURLText(url.database)
            // The fresh ladder has only `base`; rules/program.yaml rates base, silver and gold.
            _ = try await client.query(
                "INSERT INTO tiers (code, name, rank, qualification_spend_minor, qualification_window_days) VALUES ('bronze', 'Bronze', 5, 1000, 365)",
                logger: TestServices.logger)
            let run = try await Self.run(["rules", "check", rules, "--database-url", urlText], databaseURL: nil)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("are valid"))
            #expect(run.stdout.contains("warning: the rules give earn rates to tiers the database's tier ladder lacks: gold, silver"), "\(run.stdout)")
            #expect(run.stdout.contains("warning: the database's tier ladder has tiers the rules do not name: bronze"), "\(run.stdout)")

            let viaEnvironment = try await Self.run(["rules", "check", rules], databaseURL: urlText)
            #expect(viaEnvironment.stdout.contains("lacks: gold, silver"), "\(viaEnvironment.stdout)")

            // A database that cannot be read: an error when asked for by flag, a warning when only in the environment.
            let unmigrated = try Self.databaseURLText("postgres")
            let flagged = try await Self.run(["rules", "check", rules, "--database-url", unmigrated], databaseURL: nil)
            #expect(flagged.status == 1 && flagged.stderr.contains("could not read the tier ladder"), "\(flagged.stderr)")
            let fromEnvironment = try await Self.run(["rules", "check", rules], databaseURL: unmigrated)
            #expect(fromEnvironment.status == 0 && fromEnvironment.stdout.contains("warning: tiers not compared"), "\(fromEnvironment.stdout)")

            let offline = try await Self.run(["rules", "check", rules], databaseURL: nil)
            #expect(offline.status == 0 && offline.stdout.contains("are valid") && !offline.stdout.contains("warning"), "\(offline.stdout)")
        }
    }
}
