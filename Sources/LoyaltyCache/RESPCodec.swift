import CHiredis
import NIOCore

/// Encodes one command (its arguments, binary-safe) with hiredis's `redisFormatCommandArgv`.
enum RESPCommandFormat {
    /// Redis refuses bulk arguments over 512 MB; ours are far smaller. The limit keeps a bug from allocating.
    static let maximumCommandBytes = 8 * 1024 * 1024

    static func format(_ arguments: [[UInt8]], into buffer: inout ByteBuffer) throws(CacheError) {
        precondition(!arguments.isEmpty, "a Redis command has at least its name")
        // One contiguous copy of all arguments, so every pointer handed to C stays valid for the call.
        var joined: [UInt8] = []
        joined.reserveCapacity(arguments.reduce(0) { $0 + $1.count })
        var offsets: [Int] = []
        var lengths: [Int] = []
        for argument in arguments {
            offsets.append(joined.count)
            lengths.append(argument.count)
            joined.append(contentsOf: argument)
        }
        guard joined.count <= maximumCommandBytes else {
            throw .protocolError("command of \(joined.count) bytes is over the \(maximumCommandBytes)-byte limit")
        }
        if joined.isEmpty { joined.append(0) }  // a valid base pointer even when every argument is empty
        var target: UnsafeMutablePointer<CChar>?
        let length: Int32 = joined.withUnsafeBufferPointer { bytes in
            let base = UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            return lengths.withUnsafeBufferPointer { lengthPointer in
                pointers.withUnsafeMutableBufferPointer { argv in
                    redisFormatCommandArgv(&target, Int32(arguments.count), argv.baseAddress, lengthPointer.baseAddress)
                }
            }
        }
        guard length >= 0, let target else { throw .protocolError("hiredis could not format the command") }
        defer { redisFreeCommand(target) }
        buffer.writeBytes(UnsafeRawBufferPointer(start: target, count: Int(length)))
    }
}

/// Wraps a hiredis reader: feed bytes as they arrive, take whole replies out. A reply split across reads parses
/// correctly. One reader belongs to one connection.
final class RESPReader {
    private let reader: UnsafeMutablePointer<redisReader>

    init() {
        guard let reader = redisReaderCreate() else { fatalError("hiredis could not allocate a reader (out of memory)") }
        self.reader = reader
    }

    deinit { redisReaderFree(reader) }

    func feed(_ bytes: UnsafeRawBufferPointer) throws(CacheError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        if redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count) != REDIS_OK {
            throw .protocolError(errorText())
        }
    }

    /// The next whole reply, or nil when more bytes are needed.
    func nextReply() throws(CacheError) -> RedisValue? {
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &raw) == REDIS_OK else { throw .protocolError(errorText()) }
        guard let raw else { return nil }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return Self.convert(reply)
    }

    private func errorText() -> String {
        withUnsafeBytes(of: reader.pointee.errstr) { bytes in
            let text = bytes.prefix(while: { $0 != 0 })
            return String(decoding: text, as: UTF8.self)
        }
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let value = reply.pointee
        func bytes() -> [UInt8] {
            guard let str = value.str, value.len > 0 else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: Int(value.len)))
        }
        switch value.type {
        case REDIS_REPLY_STRING: return .bulkString(bytes())
        case REDIS_REPLY_STATUS: return .simpleString(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(Int64(value.integer))
        case REDIS_REPLY_NIL: return .null
        case REDIS_REPLY_ARRAY:
            guard let elements = value.element else { return .array([]) }
            return .array((0..<Int(value.elements)).map { convert(elements[$0]!) })
        default: return .error("unknown reply type \(value.type)")
        }
    }
}

/// NIO decoder: bytes in, `RedisValue` out, using hiredis's reader as the RESP parser.
final class RedisReplyDecoder: ByteToMessageDecoder {
    typealias InboundOut = RedisValue
    private let reader = RESPReader()

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if buffer.readableBytes > 0 {
            try buffer.withUnsafeReadableBytes { try reader.feed($0) }
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        }
        while let reply = try reader.nextReply() {
            context.fireChannelRead(wrapInboundOut(reply))
        }
        return .needMoreData
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// NIO encoder: a command's arguments out as RESP bytes.
final class RedisCommandEncoder: MessageToByteEncoder {
    typealias OutboundIn = [[UInt8]]

    func encode(data: [[UInt8]], out: inout ByteBuffer) throws {
        try RESPCommandFormat.format(data, into: &out)
    }
}
