import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import LoyaltyCache
import NIOCore
import PostgresNIO
import Prometheus

/// Builds the admin HTTP application. Tests call this with their own dependencies and drive it through
/// HummingbirdTesting, so what they exercise is what `serve` runs.
public enum AdminApplication {
    /// - Parameters:
    ///   - postgres: the client for tokens, members, ledger and audit; nil uses the probe's.
    ///   - cache: the till's member cache, invalidated after member writes; nil when there is none.
    ///   - metrics: the Prometheus registry the process bootstrapped swift-metrics with, served at `/metrics`;
    ///     nil answers 404 there.
    ///   - rules: the rules in force, shown, validated against and reloaded by `/v1/rules`; nil answers 404 there.
    ///   - openAPIPath: the API document served at `/openapi.json`, read once here, relative to the working
    ///     directory like `rules/` and `migrations/`.
    ///   - tls: HTTPS with this certificate; nil serves plain HTTP (loopback, tests, or behind an HTTPS proxy).
    public static func build(
        host: String,
        port: Int,
        probe: ReadinessProbe,
        logger: Logger,
        postgres: PostgresClient? = nil,
        cache: MemberCache? = nil,
        policy: AdminPolicy = AdminPolicy(),
        rules: CurrentRules? = nil,
        openAPIPath: String = "docs/openapi.json",
        metrics: PrometheusCollectorRegistry? = nil,
        tls: ListenerTLS? = nil
    ) -> some ApplicationProtocol {
        let services = AdminServices(
            postgres: postgres ?? probe.postgres, probe: probe, cache: cache, policy: policy,
            openAPIDocument: loadDocument(openAPIPath, logger: logger), metrics: metrics, rules: rules)
        let router = Router(context: AdminRequestContext.self)
        // Order matters: the request id first, so every problem and log line below carries it.
        router.add(middleware: RequestIDMiddleware())
        // Request counts and latency per route (swift-metrics; exported at /metrics when a registry is given).
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: ProblemMiddleware())
        // Inside the problem middleware, so its 405 is a problem document like every other error.
        router.add(middleware: MethodNotAllowedMiddleware(routes: AdminRouteTable.routes))
        router.register(AdminRouteTable.routes, services: services)
        return Application(
            router: router,
            server: server(tls: tls),
            configuration: .init(address: .hostname(host, port: port), serverName: "loyalty"),
            logger: logger)
    }

    /// HTTP/1.1, inside TLS when configured. Built by hand so that `build` need not throw: `.tls(…)` is declared
    /// throwing, and what could fail (a key that does not fit) `ListenerTLS` has already checked at start.
    static func server(tls: ListenerTLS?) -> HTTPServerBuilder {
        guard let tls else { return .http1() }
        return HTTPServerBuilder { responder in
            try TLSChannel(HTTP1Channel(responder: responder), tlsConfiguration: tls.configuration)
        }
    }

    static func loadDocument(_ path: String, logger: Logger) -> ByteBuffer? {
        guard let data = FileManager.default.contents(atPath: path) else {
            logger.warning("no OpenAPI document; /openapi.json will answer 404", metadata: ["path": "\(path)"])
            return nil
        }
        return ByteBuffer(bytes: data)
    }
}
