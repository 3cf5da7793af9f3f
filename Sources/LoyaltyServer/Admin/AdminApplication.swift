import Hummingbird
import Logging

/// Builds the admin HTTP application. Tests call this with their own dependencies and drive it through
/// HummingbirdTesting, so what they exercise is what `serve` runs.
public enum AdminApplication {
    public static func build(
        host: String,
        port: Int,
        probe: ReadinessProbe,
        logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router()
        HealthRoutes(probe: probe).register(on: router)
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "loyalty"),
            logger: logger)
    }
}
