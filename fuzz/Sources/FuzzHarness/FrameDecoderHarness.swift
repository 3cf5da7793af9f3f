import NIOCore
import NIOEmbedded
import POSProtocol

/// Feeds an arbitrary byte stream to the frame decoder the server installs and checks what docs/pos-protocol.md §1
/// promises: frames are re-encoded to exactly the bytes they came from, nothing beyond the limit is taken, a
/// decoder that waits does so only for a valid length, every refusal names the header field at fault, and a stream
/// split into arbitrary reads decodes exactly like one read.
public enum FrameDecoderHarness {
    /// The server's default limit, and a small one so that short inputs reach the boundary too.
    public static let maximumLengthsBytes = [Frame.defaultMaximumLength, 64]

    /// What one decoder made of a stream: the frames, then the framing error that stopped it (if any).
    public struct Outcome: Equatable {
        public var frames: [Frame] = []
        public var error: FrameError?
    }

    public static func run(_ bytes: [UInt8]) {
        let chunkBytes = readSizeBytes(for: bytes)
        for maximumLengthBytes in maximumLengthsBytes {
            let whole = decodeInOneRead(bytes, maximumLengthBytes: maximumLengthBytes)
            let split = decodeInReads(bytes, chunkBytes: chunkBytes, maximumLengthBytes: maximumLengthBytes)
            fuzzCheck(whole == split, "reads of \(chunkBytes) bytes decoded \(split), one read \(whole)")
            // A channel costs ten times the decoding itself: one input in 16 goes through the server's handler.
            guard bytes.count % 16 == 0 else { continue }
            let channel = decodeThroughChannel(bytes, chunkBytes: chunkBytes, maximumLengthBytes: maximumLengthBytes)
            fuzzCheck(whole == channel, "the channel decoded \(channel), one read \(whole)")
        }
    }

    /// Size of the reads the channel path splits the stream into: varied by the input so both paths get explored.
    static func readSizeBytes(for bytes: [UInt8]) -> Int {
        guard let last = bytes.last else { return 1 }
        return 1 + Int(last % 23)
    }

    /// Calls `decode` directly on the whole stream, checking each step against the frame layout.
    public static func decodeInOneRead(_ bytes: [UInt8], maximumLengthBytes: Int) -> Outcome {
        var decoder = FrameDecoder(maximumLength: maximumLengthBytes)
        var buffer = ByteBuffer(bytes: bytes)
        var outcome = Outcome()
        while true {
            let startIndex = buffer.readerIndex
            let frame: Frame?
            do {
                frame = try decoder.decode(buffer: &buffer)
            } catch let error as FrameError {
                fuzzCheck(buffer.readerIndex == startIndex, "a refused frame consumed bytes")
                let expected = expectedError(bytes[startIndex...], maximumLengthBytes: maximumLengthBytes)
                fuzzCheck(error == expected, "decoder threw \(error), the header says \(String(describing: expected))")
                outcome.error = error
                return outcome
            } catch {
                fuzzCheck(false, "decoder threw a non-FrameError: \(error)")
                return outcome
            }
            guard let frame else {
                checkWaiting(bytes[startIndex...], maximumLengthBytes: maximumLengthBytes)
                fuzzCheck(buffer.readerIndex == startIndex, "a decoder that waits consumed bytes")
                return outcome
            }
            let consumedBytes = buffer.readerIndex - startIndex
            fuzzCheck(frame.payload.readableBytes <= maximumLengthBytes - Frame.headerBytes,
                      "payload of \(frame.payload.readableBytes) bytes is over the limit \(maximumLengthBytes)")
            fuzzCheck(consumedBytes == Frame.lengthPrefixBytes + Frame.headerBytes + frame.payload.readableBytes,
                      "consumed \(consumedBytes) bytes for a \(frame.payload.readableBytes)-byte payload")
            var reencoded = ByteBuffer()
            FrameEncoder.write(frame, into: &reencoded)
            fuzzCheck(reencoded.readableBytesView.elementsEqual(bytes[startIndex..<(startIndex + consumedBytes)]),
                      "frame does not re-encode to the bytes it was decoded from")
            outcome.frames.append(frame)
        }
    }

    /// Feeds the stream in reads of `chunkBytes` to one decoder, decoding after each read as
    /// `ByteToMessageHandler` does: frames must not depend on how the bytes were split.
    public static func decodeInReads(_ bytes: [UInt8], chunkBytes: Int, maximumLengthBytes: Int) -> Outcome {
        var decoder = FrameDecoder(maximumLength: maximumLengthBytes)
        var buffer = ByteBuffer()
        var outcome = Outcome()
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunkBytes)
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            do {
                while let frame = try decoder.decode(buffer: &buffer) { outcome.frames.append(frame) }
            } catch {
                outcome.error = error as? FrameError
                return outcome
            }
        }
        return outcome
    }

    /// Feeds the stream in reads of `chunkBytes` through `ByteToMessageHandler(FrameDecoder)`, as the server does.
    public static func decodeThroughChannel(_ bytes: [UInt8], chunkBytes: Int, maximumLengthBytes: Int) -> Outcome {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maximumLength: maximumLengthBytes)))
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        var outcome = Outcome()
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunkBytes)
            do {
                try channel.writeInbound(ByteBuffer(bytes: bytes[offset..<end]))
            } catch let error as FrameError {
                outcome.frames += drain(channel)
                outcome.error = error
                return outcome
            } catch {
                fuzzCheck(false, "channel raised a non-FrameError: \(error)")
            }
            outcome.frames += drain(channel)
            offset = end
        }
        return outcome
    }

    static func drain(_ channel: EmbeddedChannel) -> [Frame] {
        var frames: [Frame] = []
        while let frame = try? channel.readInbound(as: Frame.self) { frames.append(frame) }
        return frames
    }

    /// The refusal docs/pos-protocol.md §1 prescribes for a stream starting at a frame boundary, if any.
    static func expectedError(_ stream: ArraySlice<UInt8>, maximumLengthBytes: Int) -> FrameError? {
        guard stream.count >= Frame.lengthPrefixBytes else { return nil }
        let length = bigEndianUInt32(stream.prefix(4))
        if length < UInt32(Frame.headerBytes) { return .lengthTooSmall(length) }
        if length > UInt32(maximumLengthBytes) { return .lengthTooLarge(length, maximum: maximumLengthBytes) }
        guard stream.count >= Frame.lengthPrefixBytes + Int(length) else { return nil }
        let version = stream[stream.startIndex + 4]
        if version != Frame.version { return .unsupportedVersion(version) }
        let kind = stream[stream.startIndex + 5]
        if Frame.Kind(rawValue: kind) == nil { return .unknownKind(kind) }
        return nil
    }

    /// A decoder may wait only for the length prefix, or for the rest of a frame whose length is acceptable:
    /// an oversized length must be refused from the prefix alone, before any body is buffered.
    static func checkWaiting(_ stream: ArraySlice<UInt8>, maximumLengthBytes: Int) {
        guard stream.count >= Frame.lengthPrefixBytes else { return }
        let length = bigEndianUInt32(stream.prefix(4))
        fuzzCheck((UInt32(Frame.headerBytes)...UInt32(maximumLengthBytes)).contains(length),
                  "decoder waits on a frame of refused length \(length)")
        fuzzCheck(stream.count < Frame.lengthPrefixBytes + Int(length),
                  "decoder waits although the whole \(length)-byte frame is there")
    }

    static func bigEndianUInt32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }
}
