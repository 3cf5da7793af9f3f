import NIOCore
import POSProtocol

/// Sent up the pipeline when a frame took longer than `frameReadTimeoutMs` from its first byte to its last.
struct POSFrameReadTimeoutEvent: Sendable {}

/// Watches the raw bytes in front of the frame decoder and times each frame from its first byte. The idle timer
/// restarts on every frame, so without this a till sending one byte a second would hold its connection (and the
/// decoder's buffer) for as long as it liked. It reads only the length prefixes: framing errors stay the
/// decoder's job.
final class FrameReadTimer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeoutMs: Int
    /// Length prefix bytes seen so far of the next frame (0-3) and their value.
    private var prefixBytesSeen = 0
    private var prefix: UInt32 = 0
    /// Bytes still to come of the current frame's body.
    private var bodyBytesLeft = 0
    private var timer: Scheduled<Void>?

    init(timeoutMs: Int) {
        self.timeoutMs = timeoutMs
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let startedNewFrame = track(unwrapInboundIn(data))
        let midFrame = prefixBytesSeen > 0 || bodyBytesLeft > 0
        if !midFrame {
            timer?.cancel()
            timer = nil
        } else if startedNewFrame || timer == nil {
            // The frame in progress began in this read: its clock starts now.
            timer?.cancel()
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(in: .milliseconds(Int64(timeoutMs))) {
                loopBound.value.fireUserInboundEventTriggered(POSFrameReadTimeoutEvent())
            }
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    /// Advances the frame boundaries over `bytes`; true when a frame ended inside them (so any frame still in
    /// progress started inside them too).
    private func track(_ bytes: ByteBuffer) -> Bool {
        var index = bytes.readerIndex
        let end = bytes.writerIndex
        var crossedBoundary = false
        while index < end {
            if bodyBytesLeft > 0 {
                let taken = min(bodyBytesLeft, end - index)
                bodyBytesLeft -= taken
                index += taken
                if bodyBytesLeft == 0 { crossedBoundary = true }
                continue
            }
            prefix = prefix << 8 | UInt32(bytes.getInteger(at: index, as: UInt8.self)!)
            prefixBytesSeen += 1
            index += 1
            if prefixBytesSeen == Frame.lengthPrefixBytes {
                bodyBytesLeft = Int(prefix)
                prefix = 0
                prefixBytesSeen = 0
                if bodyBytesLeft == 0 { crossedBoundary = true }
            }
        }
        return crossedBoundary
    }
}
