import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Sits right after the TLS handler of a POS connection. A failed handshake (plain TCP to the TLS port, a missing or
/// untrusted client certificate, a TLS version below 1.2) is logged and counted as its own close reason and goes no
/// further: the frame handlers could only answer it with a goaway frame nobody could read.
final class POSTLSFailureHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let logger: Logger
    private var handshakeCompleted = false

    init(logger: Logger) {
        self.logger = logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { handshakeCompleted = true }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError else {
            context.fireErrorCaught(error)
            return
        }
        if handshakeCompleted {
            // Mostly a till that dropped the TCP connection without a TLS close: nothing to count.
            logger.debug("pos tls connection ended with an error", metadata: ["error": "\(error)"])
        } else {
            logger.notice("pos tls handshake failed", metadata: [
                "error": "\(error)", "remote": "\(context.remoteAddress?.description ?? "?")",
            ])
            POSConnectionCloses.count(.tlsHandshakeFailed)
        }
        context.close(promise: nil)
    }
}
