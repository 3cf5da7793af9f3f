import POSProtocol

/// Limits of the POS server and of each connection. Every one is explicit so a misbehaving or hostile till cannot
/// take more than its share; docs/pos-protocol.md §6 lists them with what happens on violation.
public struct POSConnectionLimits: Sendable {
    public var maximumFrameBytes = Frame.defaultMaximumLength
    /// Requests of one connection being worked on at once; more are answered RESOURCE_EXHAUSTED at once.
    public var maximumInFlight = 64
    /// Requests being worked on at once over all connections of the server; more are answered
    /// RESOURCE_EXHAUSTED `server_busy` at once, so a burst from many tills queues in their retries, not in memory.
    public var maximumServerInFlight = 8_192
    /// Rejections past the in-flight limit in a row before the connection is closed: a till that reads
    /// `max_in_flight` never gets one, a flood gets a goaway instead of free CPU.
    public var maximumConsecutiveRejections = 1_000
    /// Time to complete Hello after connecting.
    public var handshakeTimeoutMs = 10_000
    /// A connection that sends nothing (not even a ping) for this long is closed.
    public var idleTimeoutMs = 120_000
    /// A frame whose first byte has arrived must be complete within this time. The idle timer alone does not
    /// catch a sender that trickles a byte at a time.
    public var frameReadTimeoutMs = 10_000
    /// Responses queued for a connection above this stop the server reading from it until they drain to half.
    public var writeBufferHighWatermarkBytes = 256 * 1024
    /// A connection whose queued responses stay above the watermark this long (its till reads nothing) is closed.
    public var writeStallTimeoutMs = 30_000
    /// The kernel's send buffer per connection (SO_SNDBUF; Linux doubles it for bookkeeping). POS answers are
    /// small, so this is plenty; 0 leaves it to the kernel, which grows it up to net.ipv4.tcp_wmem's maximum
    /// (4 MiB by default) and would take that much from a till that reads nothing before our queue fills.
    public var socketSendBufferBytes = 64 * 1024
    /// Open connections per server; more are closed at once (a till reconnects; a flood does not grow memory).
    public var maximumConnections = 10_000
    /// Connections not yet authenticated. When full, the oldest of them is closed to admit a new one, so idle
    /// unauthenticated sockets cannot lock real terminals out.
    public var maximumUnauthenticatedConnections = 1_000
    /// How often authenticated sessions are checked against the terminal registry: a terminal disabled or given a
    /// new secret through the admin API loses its open sessions within this time, not only at its next Hello.
    public var terminalRecheckIntervalMs = 2_000
    /// Deadline applied when a request carries 0, and the largest one honoured.
    public var defaultDeadlineMs: UInt32 = 5_000
    public var maximumDeadlineMs: UInt32 = 60_000

    public init() {}

    public var writeBufferLowWatermarkBytes: Int { writeBufferHighWatermarkBytes / 2 }

    /// What is out of range, one line each (empty when all are usable).
    public var problems: [String] {
        var found: [String] = []
        func check(_ name: String, _ value: Int, _ range: ClosedRange<Int>) {
            if !range.contains(value) { found.append("\(name) \(value) must be \(range.lowerBound)-\(range.upperBound)") }
        }
        let day = 86_400_000
        check("maximumFrameBytes", maximumFrameBytes, Frame.headerBytes...16 * 1024 * 1024)
        check("maximumInFlight", maximumInFlight, 1...100_000)
        check("maximumServerInFlight", maximumServerInFlight, 1...1_000_000)
        check("maximumConsecutiveRejections", maximumConsecutiveRejections, 1...1_000_000)
        check("handshakeTimeoutMs", handshakeTimeoutMs, 1...day)
        check("idleTimeoutMs", idleTimeoutMs, 1...day)
        check("frameReadTimeoutMs", frameReadTimeoutMs, 1...day)
        check("writeBufferHighWatermarkBytes", writeBufferHighWatermarkBytes, 1_024...64 * 1024 * 1024)
        check("writeStallTimeoutMs", writeStallTimeoutMs, 1...day)
        if socketSendBufferBytes != 0 { check("socketSendBufferBytes", socketSendBufferBytes, 4_096...64 * 1024 * 1024) }
        check("maximumConnections", maximumConnections, 1...1_000_000)
        check("terminalRecheckIntervalMs", terminalRecheckIntervalMs, 50...3_600_000)
        // Above maximumConnections it simply never binds.
        check("maximumUnauthenticatedConnections", maximumUnauthenticatedConnections, 1...1_000_000)
        if defaultDeadlineMs == 0 || defaultDeadlineMs > maximumDeadlineMs {
            found.append("defaultDeadlineMs \(defaultDeadlineMs) must be 1-\(maximumDeadlineMs) (maximumDeadlineMs)")
        }
        return found
    }
}
