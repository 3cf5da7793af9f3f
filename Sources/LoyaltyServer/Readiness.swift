import LoyaltyCache
import LoyaltyStore
import PostgresNIO

/// Whether each dependency answers, for `/ready` and the start-up check.
public struct ReadinessReport: Sendable, Codable, Equatable {
    public var ready: Bool
    public var postgres: String
    public var redis: String
    public var errors: [String: String]

    public init(ready: Bool, postgres: String, redis: String, errors: [String: String]) {
        self.ready = ready
        self.postgres = postgres
        self.redis = redis
        self.errors = errors
    }
}

/// Asks PostgreSQL (`SELECT 1`) and Redis (`PING`) concurrently, each bounded by a timeout.
public struct ReadinessProbe: Sendable {
    let postgres: PostgresClient
    let redis: RedisClient
    let databaseTarget: String
    let timeoutMs: Int

    public init(postgres: PostgresClient, redis: RedisClient, databaseTarget: String, timeoutMs: Int) {
        self.postgres = postgres
        self.redis = redis
        self.databaseTarget = databaseTarget
        self.timeoutMs = timeoutMs
    }

    public func check() async -> ReadinessReport {
        async let postgresError = checkPostgres()
        async let redisError = checkRedis()
        let (pg, rd) = await (postgresError, redisError)
        var errors: [String: String] = [:]
        if let pg { errors["postgres"] = pg }
        if let rd { errors["redis"] = rd }
        return ReadinessReport(
            ready: errors.isEmpty, postgres: pg == nil ? "up" : "down", redis: rd == nil ? "up" : "down", errors: errors)
    }

    func checkPostgres() async -> String? {
        let postgres = self.postgres
        let outcome = await withTimeout(ms: timeoutMs) {
            _ = try await postgres.query("SELECT 1")
        }
        switch outcome {
        case .success: return nil
        case .timedOut: return "PostgreSQL at \(databaseTarget) did not answer within \(timeoutMs) ms"
        case .failure(let error): return "PostgreSQL at \(databaseTarget): \(PostgresErrorText.describe(error))"
        }
    }

    func checkRedis() async -> String? {
        let redis = self.redis
        let outcome = await withTimeout(ms: timeoutMs) { try await redis.ping() }
        switch outcome {
        case .success: return nil
        case .timedOut: return "Redis at \(redis.target) did not answer within \(timeoutMs) ms"
        case .failure(let error): return "\(error)"
        }
    }
}

enum TimeoutOutcome<Value: Sendable>: Sendable {
    case success(Value)
    case failure(any Error)
    case timedOut
}

/// Runs `operation` and gives up after `ms`; the operation is cancelled when the timeout wins.
func withTimeout<Value: Sendable>(
    ms: Int, _ operation: @escaping @Sendable () async throws -> Value
) async -> TimeoutOutcome<Value> {
    await withTaskGroup(of: TimeoutOutcome<Value>.self) { group in
        group.addTask {
            do { return .success(try await operation()) } catch { return .failure(error) }
        }
        group.addTask {
            try? await Task.sleep(for: .milliseconds(ms))
            return .timedOut
        }
        let first = await group.next()!
        group.cancelAll()
        return first
    }
}
