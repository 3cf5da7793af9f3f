import Metrics
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The listener's open connections, and which of them have not authenticated yet. Unauthenticated ones have a
/// smaller cap of their own; when it is full the oldest is closed to make room, so a crowd of idle sockets
/// (which costs an attacker nothing) cannot keep a real terminal from connecting: it would have to open new ones
/// faster than a till completes Hello.
final class POSConnectionRegistry: Sendable {
    private struct State {
        var open: [ObjectIdentifier: any Channel] = [:]
        /// Admission order of the connections still unauthenticated (lower is older).
        var unauthenticated: [ObjectIdentifier: UInt64] = [:]
        /// Who each authenticated connection is, for the terminal recheck.
        var sessions: [ObjectIdentifier: POSSession] = [:]
        var nextSequence: UInt64 = 0
    }

    enum Admission {
        case refused
        case admitted(evicting: (any Channel)?)
    }

    private let state = NIOLockedValueBox(State())
    /// Requests in flight over every connection, against `POSConnectionLimits.maximumServerInFlight`.
    private let serverInFlight = Atomic<Int>(0)

    /// Takes a server-wide in-flight slot; false when all `limit` are taken.
    func admitRequest(limit: Int) -> Bool {
        if serverInFlight.wrappingAdd(1, ordering: .relaxed).newValue <= limit { return true }
        serverInFlight.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func finishRequest() {
        let left = serverInFlight.wrappingSubtract(1, ordering: .relaxed).newValue
        assert(left >= 0, "server-wide in-flight count went negative")
    }

    var requestsInFlight: Int { serverInFlight.load(ordering: .relaxed) }
    let maximumConnections: Int
    let maximumUnauthenticated: Int

    init(maximumConnections: Int, maximumUnauthenticated: Int) {
        self.maximumConnections = maximumConnections
        self.maximumUnauthenticated = min(maximumUnauthenticated, maximumConnections)
    }

    /// Admits a new connection, unauthenticated; says which older unauthenticated one to close, if any.
    func admit(_ channel: any Channel) -> Admission {
        let id = ObjectIdentifier(channel)
        let admission = state.withLockedValue { state -> Admission in
            var evicted: (any Channel)?
            if state.unauthenticated.count >= maximumUnauthenticated,
               let oldest = state.unauthenticated.min(by: { $0.value < $1.value })?.key {
                // Forget it now so the count is right at once; its close callback finds nothing to remove.
                state.unauthenticated.removeValue(forKey: oldest)
                evicted = state.open.removeValue(forKey: oldest)
            }
            guard state.open.count < maximumConnections else { return .refused }
            state.open[id] = channel
            state.unauthenticated[id] = state.nextSequence
            state.nextSequence += 1
            return .admitted(evicting: evicted)
        }
        switch admission {
        case .refused: POSConnectionCloses.count(.connectionLimit)
        case .admitted(let evicted?): POSConnectionCloses.count(.unauthenticatedEvicted); evicted.close(promise: nil)
        case .admitted(nil): break
        }
        return admission
    }

    func authenticated(_ channel: any Channel, session: POSSession) {
        state.withLockedValue { state in
            let id = ObjectIdentifier(channel)
            state.unauthenticated.removeValue(forKey: id)
            // A connection closed meanwhile is not brought back.
            if state.open[id] != nil { state.sessions[id] = session }
        }
    }

    /// Every authenticated connection with its session.
    var authenticatedSessions: [(channel: any Channel, session: POSSession)] {
        state.withLockedValue { state in
            state.sessions.compactMap { id, session in state.open[id].map { ($0, session) } }
        }
    }

    func remove(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        state.withLockedValue { state in
            state.open.removeValue(forKey: id)
            state.unauthenticated.removeValue(forKey: id)
            state.sessions.removeValue(forKey: id)
        }
    }

    var openCount: Int { state.withLockedValue { $0.open.count } }
    var unauthenticatedCount: Int { state.withLockedValue { $0.unauthenticated.count } }
    var channels: [any Channel] { state.withLockedValue { Array($0.open.values) } }
}

/// Why the server closed a POS connection on its own, counted for operators (`loyalty_pos_connections_closed_total`).
enum POSConnectionCloses: String {
    case connectionLimit = "connection_limit"
    case unauthenticatedEvicted = "unauthenticated_evicted"
    case handshakeTimeout = "handshake_timeout"
    case idleTimeout = "idle_timeout"
    case frameReadTimeout = "frame_read_timeout"
    case writeStall = "write_stall"
    case terminalRevoked = "terminal_revoked"
    case tooManyRejections = "too_many_rejections"
    case malformedFrame = "malformed_frame"
    case tlsHandshakeFailed = "tls_handshake_failed"

    static func count(_ reason: POSConnectionCloses) {
        Counter(label: "loyalty_pos_connections_closed_total", dimensions: [("reason", reason.rawValue)]).increment()
    }
}
