import NIOCore
import NIOTLS

/// Completes when the client's TLS handshake does, so `POSClient.connect` fails with the TLS error itself (an
/// untrusted server, a name mismatch, plain TCP on the other end) instead of a bare close at the first request.
/// Only the first outcome counts: completing `done` again is a no-op.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let done: EventLoopPromise<Void>

    init(done: EventLoopPromise<Void>) {
        self.done = done
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            done.succeed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.fail(POSClientError.tls("\(error)"))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.fail(POSClientError.connectionClosed)
        context.fireChannelInactive()
    }

    /// Also when the channel never became active: a promise left open is a bug NIO reports.
    func handlerRemoved(context: ChannelHandlerContext) {
        done.fail(POSClientError.connectionClosed)
    }
}
