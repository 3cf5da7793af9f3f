import Foundation

/// A parsed `redis://[:password@]host:port[/db]` URL.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var password: String?
    public var database: Int

    public init(host: String, port: Int, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.password = password
        self.database = database
    }

    public init(_ text: String) throws(CacheError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme else {
            throw .invalidRedisURL("'\(text)' is not a URL; expected redis://host:port")
        }
        guard scheme == "redis" else {
            throw .invalidRedisURL("scheme '\(scheme)' is not redis:// (TLS is not supported by this client)")
        }
        guard let host = components.host, !host.isEmpty else {
            throw .invalidRedisURL("the URL has no host; expected redis://host:port")
        }
        let port = components.port ?? 6379
        guard (1...65_535).contains(port) else { throw .invalidRedisURL("port \(port) is out of range 1-65535") }
        let path = components.path.drop(while: { $0 == "/" })
        var database = 0
        if !path.isEmpty {
            guard let number = Int(path), (0...15).contains(number) else {
                throw .invalidRedisURL("database '\(path)' is not a number from 0 to 15")
            }
            database = number
        }
        if let items = components.queryItems, let first = items.first {
            throw .invalidRedisURL("unknown URL parameter '\(first.name)'")
        }
        self.init(host: host, port: port, password: components.password, database: database)
    }

    public var description: String { "redis://\(host):\(port)/\(database)" }
}
