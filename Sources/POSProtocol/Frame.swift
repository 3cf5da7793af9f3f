import NIOCore

/// One POS protocol frame (v1, big-endian):
/// `u32 length` (of what follows) · `u8 version` · `u8 kind` · `u16 method` · `u32 request id` ·
/// `u32 deadline ms` (requests) or `u32 status` (responses) · payload (a protobuf message).
public struct Frame: Sendable, Equatable {
    public static let version: UInt8 = 1
    /// Bytes after the length prefix and before the payload.
    public static let headerBytes = 12
    public static let lengthPrefixBytes = 4
    /// Default upper bound on `length`; checked before anything is allocated.
    public static let defaultMaximumLength = 64 * 1024

    public enum Kind: UInt8, Sendable {
        case request = 1
        case response = 2
        case ping = 3
        case pong = 4
        case goaway = 5
    }

    public var kind: Kind
    public var method: UInt16
    public var requestID: UInt32
    /// Deadline in ms for requests, status code for responses, 0 otherwise.
    public var deadlineOrStatus: UInt32
    public var payload: ByteBuffer

    public init(kind: Kind, method: UInt16, requestID: UInt32, deadlineOrStatus: UInt32, payload: ByteBuffer) {
        self.kind = kind
        self.method = method
        self.requestID = requestID
        self.deadlineOrStatus = deadlineOrStatus
        self.payload = payload
    }
}

/// Why a byte stream is not a valid frame sequence. The connection is answered with a goaway and closed: after a
/// framing error nothing later on the stream can be trusted.
public enum FrameError: Error, Equatable, CustomStringConvertible {
    case lengthTooSmall(UInt32)
    case lengthTooLarge(UInt32, maximum: Int)
    case unsupportedVersion(UInt8)
    case unknownKind(UInt8)

    public var description: String {
        switch self {
        case .lengthTooSmall(let length):
            "frame length \(length) is shorter than the \(Frame.headerBytes)-byte header"
        case .lengthTooLarge(let length, let maximum):
            "frame length \(length) is over the \(maximum)-byte limit"
        case .unsupportedVersion(let version): "protocol version \(version) is not supported (this server speaks 1)"
        case .unknownKind(let kind): "frame kind \(kind) is unknown"
        }
    }
}

/// Decodes frames. Holds framing only: no business logic.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame
    public let maximumLength: Int

    public init(maximumLength: Int = Frame.defaultMaximumLength) {
        precondition(maximumLength >= Frame.headerBytes && maximumLength <= 16 * 1024 * 1024)
        self.maximumLength = maximumLength
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        // Refuse before waiting for (or allocating) the body.
        guard length >= UInt32(Frame.headerBytes) else { throw FrameError.lengthTooSmall(length) }
        guard length <= UInt32(maximumLength) else { throw FrameError.lengthTooLarge(length, maximum: maximumLength) }
        guard buffer.readableBytes >= Frame.lengthPrefixBytes + Int(length) else { return nil }

        let version = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self)!
        guard version == Frame.version else { throw FrameError.unsupportedVersion(version) }
        let kindByte = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt8.self)!
        guard let kind = Frame.Kind(rawValue: kindByte) else { throw FrameError.unknownKind(kindByte) }

        buffer.moveReaderIndex(forwardBy: 6)
        let method = buffer.readInteger(as: UInt16.self)!
        let requestID = buffer.readInteger(as: UInt32.self)!
        let deadlineOrStatus = buffer.readInteger(as: UInt32.self)!
        let payload = buffer.readSlice(length: Int(length) - Frame.headerBytes)!
        return Frame(kind: kind, method: method, requestID: requestID, deadlineOrStatus: deadlineOrStatus, payload: payload)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        try decode(buffer: &buffer)
    }
}

/// Encodes frames.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data frame: Frame, out: inout ByteBuffer) throws {
        Self.write(frame, into: &out)
    }

    public static func write(_ frame: Frame, into out: inout ByteBuffer) {
        out.reserveCapacity(minimumWritableBytes: Frame.lengthPrefixBytes + Frame.headerBytes + frame.payload.readableBytes)
        out.writeInteger(UInt32(Frame.headerBytes + frame.payload.readableBytes))
        out.writeInteger(Frame.version)
        out.writeInteger(frame.kind.rawValue)
        out.writeInteger(frame.method)
        out.writeInteger(frame.requestID)
        out.writeInteger(frame.deadlineOrStatus)
        var payload = frame.payload
        out.writeBuffer(&payload)
    }
}
