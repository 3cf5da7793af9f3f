import ArgumentParser
import Foundation
import LoyaltyCache
import LoyaltyServer
import LoyaltyStore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the POS TCP server and the admin HTTP API.")

    @OptionGroup var database: DatabaseOptions

    @Option(name: .customLong("redis-url"), help: "Redis URL (env LOYALTY_REDIS_URL).")
    var redisURL: String?

    @Option(name: .customLong("host"), help: "Address both servers bind (env LOYALTY_BIND_HOST).")
    var host: String?

    @Option(name: .customLong("pos-port"), help: "POS TCP port (env LOYALTY_POS_PORT, default 7070).")
    var posPort: Int?

    @Option(name: .customLong("admin-port"), help: "Admin HTTP port (env LOYALTY_ADMIN_PORT, default 8080).")
    var adminPort: Int?

    @Option(name: .customLong("rules-dir"), help: "Rules folder (env LOYALTY_RULES_DIR, default rules).")
    var rulesDirectory: String?

    @Option(name: .customLong("database-pool-size"), help: "PostgreSQL connections the server may open (env LOYALTY_DATABASE_POOL_SIZE, default 20).")
    var databasePoolSize: Int?

    @Flag(name: .customLong("migrate"), help: "Apply pending migrations before serving.")
    var migrateFirst = false

    func run() async throws {
        try await failingCleanly {
            let logger = makeLogger("loyalty")
            let databaseURL = try DatabaseURL(try database.resolvedDatabaseURL())
            guard let redisText = redisURL ?? environment("LOYALTY_REDIS_URL") else {
                throw CommandFailure("no Redis configured: pass --redis-url or set LOYALTY_REDIS_URL")
            }
            let redis = try RedisURL(redisText)
            let posPort = try port(posPort, env: "LOYALTY_POS_PORT", default: 7070)
            let adminPort = try port(adminPort, env: "LOYALTY_ADMIN_PORT", default: 8080)
            let configuration = ServerConfiguration(
                databaseURL: databaseURL,
                redisURL: redis,
                bindHost: host ?? environment("LOYALTY_BIND_HOST") ?? "127.0.0.1",
                posPort: posPort,
                adminPort: adminPort,
                rulesDirectory: URL(fileURLWithPath: rulesDirectory ?? environment("LOYALTY_RULES_DIR") ?? "rules"),
                migrationsDirectory: URL(fileURLWithPath: database.migrationsDirectory),
                databasePoolSize: try poolSize())
            if migrateFirst {
                let files = try MigrationFile.load(from: configuration.migrationsDirectory)
                let report = try await withPostgres(databaseURL, logger: logger) { client in
                    try await MigrationRunner(client: client, logger: logger).migrate(files) { line in
                        logger.info("\(line)")
                    }
                }
                logger.info("migrations done", metadata: ["applied": "\(report.applied.count)", "before": "\(report.alreadyAppliedCount)"])
            }
            try await LoyaltyServerRunner.run(configuration: configuration, logger: logger)
        }
    }

    private func poolSize() throws -> Int {
        let text = databasePoolSize.map(String.init) ?? environment("LOYALTY_DATABASE_POOL_SIZE") ?? "20"
        guard let value = Int(text), (1...500).contains(value) else {
            throw CommandFailure("database pool size '\(text)' must be 1-500")
        }
        return value
    }

    private func port(_ flag: Int?, env: String, default fallback: Int) throws -> Int {
        if let flag {
            guard (0...65_535).contains(flag) else { throw CommandFailure("port \(flag) is out of range 0-65535") }
            return flag
        }
        guard let text = environment(env) else { return fallback }
        guard let value = Int(text), (0...65_535).contains(value) else {
            throw CommandFailure("\(env)='\(text)' is not a port number 0-65535")
        }
        return value
    }
}
