import Foundation
import Logging
import LoyaltyCache
import LoyaltyCore
import LoyaltyStore
import NIOCore
import POSProtocol
import PostgresNIO
import SwiftProtobuf
import Synchronization

/// An authenticated terminal.
public struct POSSession: Sendable, Equatable {
    public var terminalID: String
    public var storeID: String
    /// The terminal's stored key when the session was proven: a rotation changes it, which ends the session.
    public var storedKey: [UInt8] = []
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
    /// Lookups that Redis cannot answer: one prepared statement each, on connections of their own.
    let lookups: MemberSnapshotReader
    /// Quote, Hold, Commit, Cancel and Refund: the checkout's policy over the till's writes (`CheckoutWriter`,
    /// libpq in pipeline mode: acknowledged only once committed; commits batched).
    let checkout: Checkout
    /// The checkout's members (cache first, then PostgreSQL); a lookup that read PostgreSQL fills the cache through it.
    let members: CachedCheckoutMembers
    /// Nil: every lookup goes to PostgreSQL (a server configured without Redis, or a test of that path).
    let cache: MemberCache?
    let rules: CurrentRules
    let campaigns: ActiveCampaigns
    let limits: POSConnectionLimits
    let logger: Logger
    let metrics: POSMetrics
    /// Lookups answered from the cache on the connection's event loop, without a task (for tests).
    let lookupsAnsweredOnLoop = Atomic<Int>(0)

    init(
        postgres: PostgresClient, writer: CheckoutWriter, lookups: MemberSnapshotReader, cache: MemberCache?, rules: CurrentRules,
        campaigns: ActiveCampaigns? = nil, limits: POSConnectionLimits, commitLimits: CommitBatcher.Limits = CommitBatcher.Limits(), logger: Logger
    ) {
        let campaigns = campaigns ?? ActiveCampaigns(store: nil, logger: logger)
        self.campaigns = campaigns
        self.postgres = postgres
        self.terminals = TerminalStore(client: postgres, logger: logger)
        self.lookups = lookups
        let members = CachedCheckoutMembers(
            cache: cache, store: CheckoutStore(client: postgres, logger: logger), campaigns: campaigns, logger: logger)
        self.members = members
        self.checkout = Checkout(
            ledger: writer, commitLimits: commitLimits, members: members, rules: rules, campaigns: campaigns, logger: logger)
        self.cache = cache
        self.rules = rules
        self.limits = limits
        self.logger = logger
        self.metrics = POSMetrics()
    }

    static func errorPayload(code: String, message: String) -> ByteBuffer {
        var detail = Loyalty_Pos_V1_ErrorDetail()
        detail.code = code
        detail.message = message
        let bytes: [UInt8] = (try? detail.serializedBytes()) ?? []
        return ByteBuffer(bytes: bytes)
    }

    // MARK: Hello

    /// A terminal id as sent by a client, fit for a log line: as is when it could be a registered id
    /// (A-Z a-z 0-9 _ . -, 1-64), else only its length, so nobody can write control characters into the log.
    static func loggable(terminalID: String) -> String {
        TerminalStore.isValid(terminalID: terminalID) ? terminalID : "<not a terminal id: \(terminalID.utf8.count) bytes>"
    }

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
            // The id comes from an unauthenticated client: log it only in the registry's own alphabet.
            logger.notice("pos authentication failed", metadata: ["terminal": "\(Self.loggable(terminalID: terminal.terminalID))"])
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
        outcome.auth = .authenticated(POSSession(terminalID: terminal.terminalID, storeID: terminal.storeID, storedKey: terminal.storedKey))
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
            return await decoded(payload, Loyalty_Pos_V1_LookupRequest.self) { await self.lookup($0, deadline: deadline) }
        case .quote?:
            return await decoded(payload, Loyalty_Pos_V1_QuoteRequest.self) { await self.quote($0) }
        case .hold?:
            return await decoded(payload, Loyalty_Pos_V1_HoldRequest.self) { await self.hold($0, session: session, deadline: deadline) }
        case .commit?:
            return await decoded(payload, Loyalty_Pos_V1_CommitRequest.self) { await self.commit($0, session: session, deadline: deadline) }
        case .cancel?:
            return await decoded(payload, Loyalty_Pos_V1_CancelRequest.self) { await self.cancel($0, session: session, deadline: deadline) }
        case .refund?:
            return await decoded(payload, Loyalty_Pos_V1_RefundRequest.self) { await self.refund($0, session: session, deadline: deadline) }
        case .ping?:
            return .ok(Loyalty_Pos_V1_Empty())
        default:
            return .error(.unimplemented, "unknown_method", "method \(method.map { "\($0)" } ?? "unknown") is not implemented by this server")
        }
    }

    private func decoded<Request: SwiftProtobuf.Message>(
        _ payload: ByteBuffer, _ type: Request.Type, _ body: (Request) async -> POSOutcome
    ) async -> POSOutcome {
        guard let request = try? Request(serializedBytes: Array(buffer: payload)) else {
            return .error(.invalidArgument, "malformed_payload", "\(Request.protoMessageName) could not be decoded")
        }
        return await body(request)
    }

    /// What a Lookup asks for, or the answer to one that asks for nothing valid.
    static func lookupIdentifier(_ request: Loyalty_Pos_V1_LookupRequest) -> Result<MemberIdentifier, POSOutcomeError> {
        let identifier: MemberIdentifier
        switch request.identifier {
        case .cardNumber(let value)?: identifier = .card(value)
        case .phone(let value)?: identifier = .phone(value)
        case .memberID(let value)?: identifier = .memberID(value)
        case nil: return .failure(POSOutcomeError(.error(.invalidArgument, "missing_identifier", "give a card number, a phone or a member id")))
        }
        switch identifier {
        case .card(let card) where card.isEmpty || card.utf8.count > 32:
            return .failure(POSOutcomeError(.error(.invalidArgument, "bad_card", "card number must be 1-32 characters")))
        case .phone(let phone) where phone.isEmpty || phone.utf8.count > 16:
            return .failure(POSOutcomeError(
                .error(.invalidArgument, "bad_phone", "phone must be 1-16 characters, in E.164 form (+ and digits)")))
        case .memberID(let id) where id <= 0:
            return .failure(POSOutcomeError(.error(.invalidArgument, "bad_member_id", "member id must be positive")))
        default: return .success(identifier)
        }
    }

    func lookup(_ request: Loyalty_Pos_V1_LookupRequest, deadline: ContinuousClock.Instant) async -> POSOutcome {
        let identifier: MemberIdentifier
        switch Self.lookupIdentifier(request) {
        case .success(let value): identifier = value
        case .failure(let early): return early.outcome
        }
        var cached: MemberCache.Lookup?
        if let cache {
            cached =
                switch identifier {
                case .card(let card): await cache.member(card: card)
                case .phone(let phone): await cache.member(phone: phone)
                case .memberID(let id): await cache.member(id: id)
                }
        }
        return await lookup(identifier, cached: cached, deadline: deadline)
    }

    /// How a Lookup went on the event loop (`lookupOnLoop`).
    enum LoopLookup: Sendable {
        /// A cache hit: the answer.
        case answered(POSOutcome)
        /// The cache missed or is unavailable: PostgreSQL answers (`lookup(_:cached:deadline:)`, in a task).
        case fallBack(MemberIdentifier, MemberCache.Lookup)
    }

    /// A Lookup asked of the cache without Swift concurrency, so a hit is answered on the connection's event loop.
    /// Nil when it cannot go that way (no cache, a request to be refused, or the cache cannot answer at once, see
    /// `MemberCache.memberOnLoop`): use `handle`.
    func lookupOnLoop(_ payload: ByteBuffer, eventLoop: any EventLoop) -> EventLoopFuture<LoopLookup>? {
        guard let cache, let request = try? Loyalty_Pos_V1_LookupRequest(serializedBytes: Array(buffer: payload)),
            case .success(let identifier) = Self.lookupIdentifier(request)
        else { return nil }
        let found: EventLoopFuture<MemberCache.Lookup>? =
            switch identifier {
            case .card(let card): cache.memberOnLoop(card: card, eventLoop: eventLoop)
            case .phone(let phone): cache.memberOnLoop(phone: phone, eventLoop: eventLoop)
            case .memberID(let id): cache.memberOnLoop(id: id, eventLoop: eventLoop)
            }
        let metrics = self.metrics
        return found?.map { lookup in
            guard case .hit(let member) = lookup else { return .fallBack(identifier, lookup) }
            metrics.cacheHits.increment()
            self.lookupsAnsweredOnLoop.add(1, ordering: .relaxed)
            return .answered(.ok(Self.summary(member, fromCache: true)))
        }
    }

    /// The rest of a lookup once the cache answered (`cached`; nil: there is no cache): a hit is the answer,
    /// anything else is read from PostgreSQL, and a miss fills the cache.
    func lookup(_ identifier: MemberIdentifier, cached: MemberCache.Lookup?, deadline: ContinuousClock.Instant) async -> POSOutcome {
        var refill = false
        switch cached {
        case .hit(let member)?:
            metrics.cacheHits.increment()
            return .ok(Self.summary(member, fromCache: true))
        case .miss?:
            metrics.cacheMisses.increment()
            refill = true
        case .unavailable(let error)?:
            // Answer from PostgreSQL; the breaker inside the client keeps this path fast while Redis is down.
            metrics.cacheFallbacks.increment()
            logger.debug("member cache unavailable; answering from PostgreSQL", metadata: ["error": "\(error)"])
        case nil:
            break
        }
        let data: Data?
        do { data = try await lookups.snapshot(identifier, deadline: deadline) } catch {
            switch error {
            case .deadlineExceeded:
                return .error(.deadlineExceeded, "deadline_exceeded", "the lookup's deadline passed before PostgreSQL could be asked")
            case .unavailable(let reason):
                logger.warning("pos lookup could not reach PostgreSQL", metadata: ["error": "\(reason)"])
                return .error(.unavailable, "store_unavailable", "the member store is unreachable; retry")
            }
        }
        guard let data, let member = try? JSONDecoder().decode(CachedMember.self, from: data) else {
            return .error(.notFound, "unknown_member", "no member with that identifier")
        }
        if refill, member.status != "erased" { await members.put(member) }
        return .ok(Self.summary(member, fromCache: false))
    }

    /// Puts a member's new snapshot in the cache. A failure leaves the older version there, which the next write
    /// or the epoch bump after an outage replaces; the ledger in PostgreSQL is the truth either way.
    static func summary(_ member: CachedMember, fromCache: Bool) -> Loyalty_Pos_V1_MemberSummary {
        var summary = Loyalty_Pos_V1_MemberSummary()
        summary.memberID = member.memberID
        summary.tierCode = member.tierCode
        summary.tierName = member.tierName
        summary.status = member.status
        summary.points = .with { $0.available = member.points.available; $0.pending = member.points.pending; $0.held = member.points.held }
        summary.cashbackMinor = .with {
            $0.available = member.cashbackMinor.available; $0.pending = member.cashbackMinor.pending; $0.held = member.cashbackMinor.held
        }
        summary.fromCache = fromCache
        return summary
    }
}
