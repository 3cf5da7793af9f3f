import Foundation
import Hummingbird
import HummingbirdTesting
import LoyaltyCache
import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Health and readiness against real services")
struct HealthTests {
    @Test("/health answers 200 and /ready answers 200 when PostgreSQL and Redis are up")
    func readyWhenUp() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        try await TestServices.withClient(try TestServices.databaseURL()) { postgres in
            let app = AdminApplication.build(
                host: "127.0.0.1", port: 0,
                probe: ReadinessProbe(postgres: postgres, redis: redis, databaseTarget: "test", timeoutMs: 2_000),
                logger: TestServices.logger)
            try await app.test(.router) { client in
                try await client.execute(uri: "/health", method: .get) { response in
                    #expect(response.status == .ok)
                }
                // Polled with a deadline: when the whole suite starts, PostgreSQL is busy creating every test's
                // database and one probe may miss its 2 s; ready must follow within the deadline.
                let deadline = ContinuousClock.now + .seconds(30)
                var report: ReadinessReport?
                var status: HTTPResponse.Status = .serviceUnavailable
                while ContinuousClock.now < deadline {
                    try await client.execute(uri: "/ready", method: .get) { response in
                        status = response.status
                        report = try JSONDecoder().decode(ReadinessReport.self, from: Data(buffer: response.body))
                    }
                    if status == .ok { break }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(status == .ok)
                #expect(report == ReadinessReport(ready: true, postgres: "up", redis: "up", errors: [:]))
            }
        }
    }

    @Test("/ready reports a stopped Redis as down with 503")
    func readyReportsStoppedRedis() async throws {
        let scratch = try await ScratchRedis.start()
        let redis = try TestServices.redisClient(scratch.url)
        defer { Task { await redis.shutdown() } }
        try await TestServices.withClient(try TestServices.databaseURL()) { postgres in
            let app = AdminApplication.build(
                host: "127.0.0.1", port: 0,
                probe: ReadinessProbe(postgres: postgres, redis: redis, databaseTarget: "test", timeoutMs: 3_000),
                logger: TestServices.logger)
            try await app.test(.router) { client in
                // A scratch Redis just started on a loaded machine may take a moment to answer: wait for ready
                // first (the test is about what happens after it stops).
                var ready = false
                let deadline = ContinuousClock.now + .seconds(20)
                while !ready && ContinuousClock.now < deadline {
                    ready = try await client.execute(uri: "/ready", method: .get) { $0.status == .ok }
                    if !ready { try await Task.sleep(for: .milliseconds(200)) }
                }
                #expect(ready)
                scratch.stop()
                try await Task.sleep(for: .milliseconds(100))
                try await client.execute(uri: "/ready", method: .get) { response in
                    #expect(response.status == .serviceUnavailable)
                    let report = try JSONDecoder().decode(ReadinessReport.self, from: Data(buffer: response.body))
                    #expect(report.ready == false)
                    #expect(report.postgres == "up")
                    #expect(report.redis == "down")
                    #expect(report.errors["redis"]?.contains("127.0.0.1:\(scratch.port)") == true)
                }
            }
        }
    }

    @Test("/ready reports an unreachable PostgreSQL as down")
    func readyReportsDeadPostgres() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let deadURL = try DatabaseURL("postgres://nobody@127.0.0.1:\(try freePort())/none")
        try await TestServices.withClient(deadURL) { postgres in
            let app = AdminApplication.build(
                host: "127.0.0.1", port: 0,
                probe: ReadinessProbe(postgres: postgres, redis: redis, databaseTarget: deadURL.description, timeoutMs: 2_000),
                logger: TestServices.logger)
            try await app.test(.router) { client in
                try await client.execute(uri: "/ready", method: .get) { response in
                    #expect(response.status == .serviceUnavailable)
                    let report = try JSONDecoder().decode(ReadinessReport.self, from: Data(buffer: response.body))
                    #expect(report.postgres == "down")
                    #expect(report.redis == "up")
                }
            }
        }
    }

    @Test("the server refuses to start when Redis is unreachable, naming it")
    func startupFailsWithoutRedis() async throws {
        let configuration = ServerConfiguration(
            databaseURL: try TestServices.databaseURL(),
            redisURL: RedisURL(host: "127.0.0.1", port: try freePort()),
            posPort: 0, adminPort: 0,
            rulesDirectory: TestServices.packageRoot.appendingPathComponent("rules"),
            dependencyTimeoutMs: 500)
        await #expect {
            try await LoyaltyServerRunner.run(configuration: configuration, logger: TestServices.logger)
        } throws: { error in
            guard let startup = error as? StartupError else { return false }
            return startup.description.contains("Redis at 127.0.0.1:\(configuration.redisURL.port)")
        }
    }

    @Test("the server refuses to start when PostgreSQL is unreachable, naming it")
    func startupFailsWithoutPostgres() async throws {
        let port = try freePort()
        let configuration = ServerConfiguration(
            databaseURL: try DatabaseURL("postgres://nobody@127.0.0.1:\(port)/none"),
            redisURL: try TestServices.redisURL(),
            posPort: 0, adminPort: 0,
            rulesDirectory: TestServices.packageRoot.appendingPathComponent("rules"),
            dependencyTimeoutMs: 500)
        await #expect {
            try await LoyaltyServerRunner.run(configuration: configuration, logger: TestServices.logger)
        } throws: { error in
            String(describing: error).contains("PostgreSQL at postgres://nobody@127.0.0.1:\(port)/none")
        }
    }
}

@Suite("Redis client through hiredis")
struct RedisClientTests {
    @Test("binary-safe SET and GET, integers, nulls and errors")
    func roundTrips() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let key = "test:\(UUID().uuidString)"
        let value: [UInt8] = [0, 13, 10, 255, 36, 42]
        #expect(try await redis.send(bytes: [Array("SET".utf8), Array(key.utf8), value, Array("PX".utf8), Array("10000".utf8)]) == .simpleString("OK"))
        #expect(try await redis.send(["GET", key]) == .bulkString(value))
        #expect(try await redis.send(["GET", key + ":none"]) == .null)
        #expect(try await redis.send(["DEL", key]) == .integer(1))
        await #expect(throws: CacheError.self) { try await redis.send(["NOSUCHCOMMAND"]) }
        // The connection still works after an error reply.
        try await redis.ping()
    }

    @Test("many pipelined commands on few connections each get their own reply")
    func pipelined() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let prefix = "test:\(UUID().uuidString):"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<500 {
                group.addTask {
                    _ = try await redis.send(["SET", prefix + "\(index)", "\(index)", "PX", "10000"])
                    let reply = try await redis.send(["GET", prefix + "\(index)"])
                    #expect(reply.string == "\(index)")
                }
            }
            try await group.waitForAll()
        }
    }

    @Test("after a few failures the breaker opens and fails fast")
    func breakerOpens() async throws {
        var configuration = RedisClient.Configuration(url: RedisURL(host: "127.0.0.1", port: try freePort()))
        configuration.breakerFailureThreshold = 2
        configuration.breakerCooldownMs = 60_000
        let redis = RedisClient(configuration: configuration, logger: TestServices.logger)
        for _ in 0..<2 { await #expect(throws: CacheError.self) { try await redis.ping() } }
        #expect(redis.isCircuitOpen)
        await #expect {
            try await redis.ping()
        } throws: { error in
            if case .circuitOpen = error as? CacheError { return true }
            return false
        }
    }
}
