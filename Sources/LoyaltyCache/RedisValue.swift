/// One RESP2 reply.
public enum RedisValue: Sendable, Equatable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    case bulkString([UInt8])
    case null
    case array([RedisValue])

    /// The reply as text, for bulk and simple strings.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }

    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): bytes
        case .simpleString(let text): Array(text.utf8)
        default: nil
        }
    }

    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The elements of an array reply.
    public var elements: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }
}

/// Errors of the cache layer. None of them is fatal to a request: callers fall back to PostgreSQL.
public enum CacheError: Error, Equatable, CustomStringConvertible {
    case invalidRedisURL(String)
    case unreachable(target: String, reason: String)
    case timeout(target: String, timeoutMs: Int)
    case connectionClosed(target: String)
    case circuitOpen(target: String, retryInMs: Int)
    case tooManyPendingCommands(limit: Int)
    case protocolError(String)
    case server(String)
    /// A value or setting outside the cache's explicit limits (key length, blob size, TTL bounds); nothing was sent.
    case limitExceeded(String)

    public var description: String {
        switch self {
        case .invalidRedisURL(let reason): "invalid Redis URL: \(reason)"
        case .unreachable(let target, let reason):
            "Redis at \(target) is unreachable: \(reason); check that it runs and that LOYALTY_REDIS_URL is right"
        case .timeout(let target, let timeoutMs): "Redis at \(target) did not answer within \(timeoutMs) ms"
        case .connectionClosed(let target): "the connection to Redis at \(target) closed"
        case .circuitOpen(let target, let retryInMs):
            "Redis at \(target) is failing; not trying again for \(retryInMs) ms (answers come from PostgreSQL)"
        case .tooManyPendingCommands(let limit): "more than \(limit) Redis commands waiting on one connection"
        case .protocolError(let reason): "Redis protocol error: \(reason)"
        case .server(let message): "Redis answered with an error: \(message)"
        case .limitExceeded(let reason): "refused by the cache's limits: \(reason)"
        }
    }
}
