import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The POS TCP listener. Binds at start (so a taken port fails start-up), stops accepting on graceful shutdown.
public final class POSListener: Service {
    let host: String
    let port: Int
    let logger: Logger
    private let serverChannel: any Channel

    /// Binds now; `run()` serves until shutdown.
    public init(host: String, port: Int, logger: Logger) async throws {
        self.host = host
        self.port = port
        self.logger = logger
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                // Frames and methods come with the POS protocol; for now a connection is accepted and closed.
                channel.close()
            }
        do {
            serverChannel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            throw StartupError.portUnavailable(what: "POS terminals", host: host, port: port, reason: "\(error)")
        }
    }

    public var boundPort: Int { serverChannel.localAddress?.port ?? port }

    public func run() async throws {
        logger.info("pos listener started", metadata: ["address": "\(host):\(boundPort)"])
        let channel = serverChannel
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        logger.info("pos listener stopped")
    }
}
