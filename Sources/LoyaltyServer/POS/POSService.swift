import Foundation
import Logging
import LoyaltyStore
import NIOCore
import POSProtocol
import PostgresNIO
import SwiftProtobuf

/// An authenticated terminal.
public struct POSSession: Sendable, Equatable {
    public var terminalID: String
    public var storeID: String
}

/// What a POS request produced: a status, a payload, and for Hello steps the new authentication state.
struct POSOutcome: Sendable {
    enum Auth: Sendable {
        case challenge(TerminalRecord, authMessage: [UInt8])
        case authenticated(POSSession)
        case failed
    }

    var status: POSStatus
    var payload: ByteBuffer
    var auth: Auth?

    static func ok(_ message: some SwiftProtobuf.Message) -> POSOutcome {
        let bytes: [UInt8] = (try? message.serializedBytes()) ?? []
        return POSOutcome(status: .ok, payload: ByteBuffer(bytes: bytes))
    }

    static func error(_ status: POSStatus, _ code: String, _ message: String) -> POSOutcome {
        POSOutcome(status: status, payload: POSService.errorPayload(code: code, message: message))
    }
}

/// The POS methods, behind an async interface: the NIO handler knows framing and connection state only.
final class POSService: Sendable {
    let postgres: PostgresClient
    let terminals: TerminalStore
    let limits: POSConnectionLimits
    let logger: Logger

    init(postgres: PostgresClient, limits: POSConnectionLimits, logger: Logger) {
        self.postgres = postgres
        self.terminals = TerminalStore(client: postgres, logger: logger)
        self.limits = limits
        self.logger = logger
    }

    static func errorPayload(code: String, message: String) -> ByteBuffer {
        var detail = Loyalty_Pos_V1_ErrorDetail()
        detail.code = code
        detail.message = message
        let bytes: [UInt8] = (try? detail.serializedBytes()) ?? []
        return ByteBuffer(bytes: bytes)
    }

    // MARK: Hello

    func hello(_ payload: ByteBuffer) async -> POSOutcome {
        guard let request = try? Loyalty_Pos_V1_HelloRequest(serializedBytes: Array(buffer: payload)) else {
            return .error(.invalidArgument, "malformed_payload", "HelloRequest could not be decoded")
        }
        guard request.protocolVersion == UInt32(Frame.version) else {
            return .error(.failedPrecondition, "unsupported_version", "protocol version \(request.protocolVersion) is not supported; use 1")
        }
        guard TerminalAuth.nonceBytesRange.contains(request.clientNonce.count) else {
            return .error(.invalidArgument, "bad_nonce", "client_nonce must be 16-64 bytes")
        }
        let record: TerminalRecord?
        do { record = try await terminals.find(terminalID: request.terminalID) } catch {
            logger.error("terminal lookup failed", metadata: ["error": "\(PostgresErrorText.describe(error))"])
            return .error(.unavailable, "store_unavailable", "terminal registry unavailable; retry")
        }
        // Unknown and disabled terminals get the same answer as a wrong secret would, one step later, so the
        // registry cannot be probed: a fake challenge that no proof satisfies.
        let terminal = record.flatMap { $0.isActive ? $0 : nil } ?? TerminalRecord(
            terminalID: request.terminalID, storeID: "", salt: TerminalAuth.randomBytes(16), iterations: TerminalAuth.defaultIterations,
            storedKey: TerminalAuth.randomBytes(32), serverKey: TerminalAuth.randomBytes(32), isActive: false)
        var challenge = Loyalty_Pos_V1_HelloChallenge()
        challenge.salt = Data(terminal.salt)
        challenge.iterations = UInt32(terminal.iterations)
        challenge.serverNonce = Data(TerminalAuth.randomBytes(24))
        let authMessage = TerminalAuth.authMessage(
            terminalID: request.terminalID, clientNonce: Array(request.clientNonce), serverNonce: Array(challenge.serverNonce),
            salt: terminal.salt)
        var outcome = POSOutcome.ok(challenge)
        outcome.auth = .challenge(terminal, authMessage: authMessage)
        return outcome
    }

    func helloProof(_ payload: ByteBuffer, terminal: TerminalRecord, authMessage: [UInt8]) async -> POSOutcome {
        guard let proof = try? Loyalty_Pos_V1_HelloProof(serializedBytes: Array(buffer: payload)) else {
            return .error(.invalidArgument, "malformed_payload", "HelloProof could not be decoded")
        }
        guard terminal.isActive, TerminalAuth.verify(proof: Array(proof.clientProof), storedKey: terminal.storedKey, authMessage: authMessage) else {
            logger.notice("pos authentication failed", metadata: ["terminal": "\(terminal.terminalID)"])
            var failed = POSOutcome.error(.unauthenticated, "bad_credentials", "unknown terminal, disabled terminal or wrong secret")
            failed.auth = .failed
            return failed
        }
        var accepted = Loyalty_Pos_V1_HelloAccepted()
        accepted.serverSignature = Data(TerminalAuth.serverSignature(serverKey: terminal.serverKey, authMessage: authMessage))
        accepted.storeID = terminal.storeID
        accepted.maxInFlight = UInt32(limits.maximumInFlight)
        accepted.maxFrameBytes = UInt32(limits.maximumFrameBytes)
        var outcome = POSOutcome.ok(accepted)
        outcome.auth = .authenticated(POSSession(terminalID: terminal.terminalID, storeID: terminal.storeID))
        logger.info("pos terminal authenticated", metadata: ["terminal": "\(terminal.terminalID)", "store": "\(terminal.storeID)"])
        return outcome
    }

    // MARK: Methods

    func handle(method: Loyalty_Pos_V1_Method?, payload: ByteBuffer, session: POSSession, deadline: ContinuousClock.Instant) async -> POSOutcome {
        guard ContinuousClock.now < deadline else {
            return .error(.deadlineExceeded, "deadline_exceeded", "the request's deadline passed before it started; nothing was applied")
        }
        switch method {
        case .lookup?:
            guard let request = try? Loyalty_Pos_V1_LookupRequest(serializedBytes: Array(buffer: payload)) else {
                return .error(.invalidArgument, "malformed_payload", "LookupRequest could not be decoded")
            }
            return await lookup(request, deadline: deadline)
        default:
            return .error(.unimplemented, "unknown_method", "method \(method.map { "\($0)" } ?? "unknown") is not implemented by this server")
        }
    }

    func lookup(_ request: Loyalty_Pos_V1_LookupRequest, deadline: ContinuousClock.Instant) async -> POSOutcome {
        let card: String?
        let phone: String?
        let memberID: Int64?
        switch request.identifier {
        case .cardNumber(let value)?: (card, phone, memberID) = (value, nil, nil)
        case .phone(let value)?: (card, phone, memberID) = (nil, value, nil)
        case .memberID(let value)?: (card, phone, memberID) = (nil, nil, value)
        case nil: return .error(.invalidArgument, "missing_identifier", "give a card number, a phone or a member id")
        }
        if let card, card.isEmpty || card.utf8.count > 32 { return .error(.invalidArgument, "bad_card", "card number must be 1-32 characters") }
        if let phone, phone.isEmpty || phone.utf8.count > 16 { return .error(.invalidArgument, "bad_phone", "phone must be in E.164 form") }
        do {
            let rows = try await postgres.query(
                """
                SELECT m.member_id, t.code, t.name, m.status,
                       coalesce(sum(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'available'), 0)::int8,
                       coalesce(sum(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'pending'), 0)::int8,
                       coalesce(sum(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'held'), 0)::int8,
                       coalesce(sum(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'available'), 0)::int8,
                       coalesce(sum(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'pending'), 0)::int8,
                       coalesce(sum(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'held'), 0)::int8
                FROM members m JOIN tiers t USING (tier_id) LEFT JOIN accounts a ON a.member_id = m.member_id
                WHERE (\(card)::text IS NOT NULL AND m.card_number = \(card))
                   OR (\(phone)::text IS NOT NULL AND m.phone = \(phone))
                   OR (\(memberID)::int8 IS NOT NULL AND m.member_id = \(memberID))
                GROUP BY m.member_id, t.code, t.name, m.status
                """, logger: logger)
            for try await (id, tierCode, tierName, status, pa, pp, ph, ca, cp, ch) in rows.decode(
                (Int64, String, String, String, Int64, Int64, Int64, Int64, Int64, Int64).self)
            {
                var summary = Loyalty_Pos_V1_MemberSummary()
                summary.memberID = id
                summary.tierCode = tierCode
                summary.tierName = tierName
                summary.status = status
                summary.points = .with { $0.available = pa; $0.pending = pp; $0.held = ph }
                summary.cashbackMinor = .with { $0.available = ca; $0.pending = cp; $0.held = ch }
                return .ok(summary)
            }
            return .error(.notFound, "unknown_member", "no member with that identifier")
        } catch {
            logger.error("lookup failed", metadata: ["error": "\(PostgresErrorText.describe(error))"])
            return .error(.unavailable, "store_unavailable", "member store unavailable; retry")
        }
    }
}
