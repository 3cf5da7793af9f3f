import Foundation
import Logging
import LoyaltyCache
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import NIOCore
import NIOPosix
import POSProtocol
import PostgresNIO
import Testing

/// A real POS listener on a free port over a migrated database, with one registered terminal, the repository's
/// rules (or those of `rulesDirectory`) and, given a Redis URL, a member cache over that Redis.
struct POSHarness: Sendable {
    let port: Int
    let url: DatabaseURL
    let client: PostgresClient
    let terminalID = "till-1"
    let secret: [UInt8]
    let listener: POSListener
    let service: POSService
    let rules: CurrentRules
    let cache: MemberCache?
    /// Backed by the test database; call `refresh()` after creating a campaign.
    let campaigns: ActiveCampaigns

    static func with(
        limits: POSConnectionLimits = POSConnectionLimits(), redisURL: RedisURL? = nil, rulesDirectory: URL? = nil,
        commitLimits: CommitBatcher.Limits = CommitBatcher.Limits(), cacheNamespace: String? = nil,
        epochRefreshInterval: Duration? = nil, localCacheBytes: Int = 0, tls: ListenerTLS? = nil, drainTimeoutMs: Int = 2_000,
        _ body: @Sendable (POSHarness) async throws -> Void
    ) async throws {
        var testLimits = limits
        if testLimits.defaultDeadlineMs == POSConnectionLimits().defaultDeadlineMs {
            // A request without its own deadline gets 30 s here, not 5: with the whole suite on two cores a
            // commit can wait seconds, and no test that leaves the deadline out is about deadlines.
            testLimits.defaultDeadlineMs = 30_000
        }
        let limits = testLimits
        try await TestServices.withMigratedDatabase { url, client in
            let secret = TerminalAuth.randomBytes(32)
            let credentials = TerminalAuth.credentials(secret: secret)
            try await TerminalStore(client: client, logger: TestServices.logger).save(
                terminalID: "till-1", storeID: "store-9", salt: credentials.salt, iterations: credentials.iterations,
                storedKey: credentials.storedKey, serverKey: credentials.serverKey)
            let rules = try CurrentRules(
                directory: rulesDirectory ?? TestServices.packageRoot.appendingPathComponent("rules"), logger: TestServices.logger)
            try await rules.synchronize(with: RulesHistoryStore(client: client, logger: TestServices.logger))
            var redis: RedisClient?
            var cache: MemberCache?
            if let redisURL {
                let recovery = RedisRecoverySignal()
                var configuration = RedisClient.Configuration(url: redisURL)
                configuration.connectTimeoutMs = 1_000
                configuration.commandTimeoutMs = 1_000
                configuration.breakerCooldownMs = 50
                redis = RedisClient(configuration: configuration, logger: TestServices.logger, onRecovery: { recovery.fire() })
                // A namespace of its own unless the test names one: test databases all start member ids at 1, and
                // tests run in parallel.
                var cacheConfiguration = MemberCache.Configuration()
                cacheConfiguration.namespace = cacheNamespace ?? "test-\(UUID().uuidString.prefix(8))"
                if let epochRefreshInterval { cacheConfiguration.epochRefreshInterval = epochRefreshInterval }
                cacheConfiguration.localCacheBytes = localCacheBytes
                cache = try MemberCache(
                    redis: redis!, configuration: cacheConfiguration, recoverySignal: recovery, logger: TestServices.logger)
            }
            let campaigns = ActiveCampaigns(store: CampaignStore(client: client, logger: TestServices.logger), logger: TestServices.logger)
            let writer = try await CheckoutWriter.connect(url: url, connections: 2, logger: TestServices.logger)
            let lookups = try await MemberSnapshotReader.connect(url: url, connections: 1, logger: TestServices.logger)
            let service = POSService(
                postgres: client, writer: writer, lookups: lookups, cache: cache, rules: rules, campaigns: campaigns, limits: limits,
                commitLimits: commitLimits, logger: TestServices.logger)
            let listener = try await POSListener(
                host: "127.0.0.1", port: 0, service: service, limits: limits, logger: TestServices.logger, drainTimeoutMs: drainTimeoutMs,
                tls: tls)
            let harness = POSHarness(port: listener.boundPort, url: url, client: client, secret: secret, listener: listener, service: service, rules: rules, cache: cache,
                                     campaigns: campaigns)
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await listener.run() }
                    defer { group.cancelAll() }
                    try await body(harness)
                }
            } catch {
                await writer.close()
                await lookups.close()
                await cache?.close()
                await redis?.shutdown()
                throw error
            }
            await writer.close()
            await lookups.close()
            await cache?.close()
            await redis?.shutdown()
        }
    }

    func connect(tls: POSClientTLS? = nil) async throws -> POSClient {
        try await POSClient.connect(host: "127.0.0.1", port: port, tls: tls)
    }

    /// Backends of the test database's checkout connections waiting for a lock.
    func waitingOnLocks() async throws -> Int64 {
        try await client.backendsWaitingOnLocks(application: "loyalty-checkout")
    }

    func authenticated() async throws -> POSClient {
        let pos = try await connect()
        try await pos.hello(terminalID: terminalID, secret: secret)
        return pos
    }
}

func lookup(card: String) -> Loyalty_Pos_V1_LookupRequest {
    var request = Loyalty_Pos_V1_LookupRequest()
    request.cardNumber = card
    return request
}

@Suite("POS server over TCP")
struct POSServerTests {
    @Test("a client's terminal id reaches the log only in the registry's alphabet")
    func loggableTerminalID() {
        #expect(POSService.loggable(terminalID: "till-1.A_b") == "till-1.A_b")
        #expect(POSService.loggable(terminalID: "evil\n[ERROR] forged line") == "<not a terminal id: 24 bytes>")
        #expect(POSService.loggable(terminalID: "") == "<not a terminal id: 0 bytes>")
        #expect(POSService.loggable(terminalID: String(repeating: "a", count: 65)) == "<not a terminal id: 65 bytes>")
    }

    @Test("a terminal disabled or given a new secret loses its open sessions at the next recheck; other terminals keep theirs")
    func revokedTerminalSessionsClose() async throws {
        var limits = POSConnectionLimits()
        limits.terminalRecheckIntervalMs = 100
        try await POSHarness.with(limits: limits) { harness in
            let terminals = TerminalStore(client: harness.client, logger: TestServices.logger)
            let secondSecret = TerminalAuth.randomBytes(32)
            let second = TerminalAuth.credentials(secret: secondSecret)
            try await terminals.save(
                terminalID: "till-2", storeID: "store-9", salt: second.salt, iterations: second.iterations,
                storedKey: second.storedKey, serverKey: second.serverKey)
            let first = try await harness.authenticated()
            let other = try await harness.connect()
            try await other.hello(terminalID: "till-2", secret: secondSecret)

            // Disabled: its session ends within a few rechecks, without waiting for its next Hello.
            try await harness.client.query("UPDATE terminals SET status = 'disabled' WHERE terminal_id = 'till-2'")
            let deadline = ContinuousClock.now + .seconds(10)
            var closed = false
            while !closed && ContinuousClock.now < deadline {
                do { try await other.ping() } catch { closed = true }
                if !closed { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(closed)
            // It was told why before the close.
            let goaway = try #require(other.goaway)
            #expect(goaway.status == .unauthenticated)
            #expect(try Loyalty_Pos_V1_ErrorDetail(serializedBytes: Array(buffer: goaway.payload)).code == "terminal_revoked")
            try await first.ping()
            #expect(try await first.call(.lookup, lookup(card: "NOPE-0000")).status == .notFound)

            // A new secret: the session proven with the old one ends; the new secret opens a new one.
            let newSecret = TerminalAuth.randomBytes(32)
            let rotated = TerminalAuth.credentials(secret: newSecret)
            try await terminals.save(
                terminalID: "till-1", storeID: "store-9", salt: rotated.salt, iterations: rotated.iterations,
                storedKey: rotated.storedKey, serverKey: rotated.serverKey)
            // Whatever the timer has done meanwhile, no session proven with the old key is left after a recheck.
            await harness.listener.closeRevokedSessions()
            await #expect(throws: (any Error).self) { _ = try await first.call(.lookup, lookup(card: "NOPE-0000")) }
            let renewed = try await harness.connect()
            try await renewed.hello(terminalID: "till-1", secret: newSecret)
            #expect(try await renewed.call(.lookup, lookup(card: "NOPE-0000")).status == .notFound)
            #expect(await harness.listener.closeRevokedSessions() == 0)
            await renewed.close()
        }
    }

    @Test("Hello with the right secret authenticates and the server proves itself; lookup answers balances")
    func helloThenLookup() async throws {
        try await POSHarness.with { harness in
            let members = MemberStore(client: harness.client, logger: TestServices.logger)
            let member = try await members.create(NewMember(cardNumber: "CARD-0001"))
            let ledger = LedgerStore(client: harness.client, logger: TestServices.logger)
            let now = Date()
            _ = try await ledger.accrue(
                AccrualRequest(memberID: member, unit: .points, amount: 420, availableAt: now, expiresAt: nil, occurredAt: now, actor: "t"),
                key: try IdempotencyKey(scope: "t", key: "1"))

            let pos = try await harness.connect()
            let accepted = try await pos.hello(terminalID: harness.terminalID, secret: harness.secret)
            #expect(accepted.storeID == "store-9")
            let summary = try await pos.call(.lookup, lookup(card: "CARD-0001")).decode(Loyalty_Pos_V1_MemberSummary.self)
            #expect(summary.memberID == member)
            #expect(summary.tierCode == "base")
            #expect(summary.points.available == 420)
            let missing = try await pos.call(.lookup, lookup(card: "NOPE-0000"))
            #expect(missing.status == .notFound)
            await pos.close()
        }
    }

    @Test("a wrong secret, an unknown terminal and requests before Hello are refused; Ping needs no Hello")
    func authenticationRequired() async throws {
        try await POSHarness.with { harness in
            let early = try await harness.connect()
            try await early.ping()
            #expect(try await early.call(.lookup, lookup(card: "CARD-0001")).status == .unauthenticated)

            await #expect(throws: POSClientError.self) {
                try await early.hello(terminalID: harness.terminalID, secret: TerminalAuth.randomBytes(32))
            }
            let stranger = try await harness.connect()
            await #expect(throws: POSClientError.self) {
                try await stranger.hello(terminalID: "till-404", secret: harness.secret)
            }
            await early.close()
            await stranger.close()
        }
    }

    @Test("1,000 pipelined requests on one connection are all answered; past the in-flight limit with RESOURCE_EXHAUSTED")
    func pipelined() async throws {
        var limits = POSConnectionLimits()
        limits.maximumInFlight = 32
        try await POSHarness.with(limits: limits) { harness in
            _ = try await MemberStore(client: harness.client, logger: TestServices.logger).create(NewMember(cardNumber: "CARD-0002"))
            let pos = try await harness.authenticated()
            let statuses = try await withThrowingTaskGroup(of: POSStatus.self) { group in
                for _ in 0..<1_000 { group.addTask { try await pos.call(.lookup, lookup(card: "CARD-0002")).status } }
                return try await group.reduce(into: [POSStatus]()) { $0.append($1) }
            }
            #expect(statuses.count == 1_000)
            #expect(Set(statuses).isSubset(of: [.ok, .resourceExhausted]))
            #expect(statuses.contains(.ok))
            // The connection is still good afterwards.
            #expect(try await pos.call(.lookup, lookup(card: "CARD-0002")).status == .ok)
            await pos.close()
        }
    }

    @Test("garbage payloads and unknown methods get a status and the connection survives")
    func badPayloadsKeepConnection() async throws {
        try await POSHarness.with { harness in
            let pos = try await harness.authenticated()
            let garbage = try await pos.call(method: UInt16(Loyalty_Pos_V1_Method.lookup.rawValue), payload: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF]))
            #expect(garbage.status == .invalidArgument)
            let unknown = try await pos.call(method: 999, payload: ByteBuffer())
            #expect(unknown.status == .unimplemented)
            try await pos.ping()
            await pos.close()
        }
    }

    @Test("a frame announcing 2 GiB is refused from its length alone and the connection closed")
    func hugeFrameRefused() async throws {
        try await POSHarness.with { harness in
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: harness.port).get()
            var bytes = ByteBuffer()
            bytes.writeInteger(UInt32(2 * 1024 * 1024 * 1024 as UInt64))
            bytes.writeBytes([1, 1, 0, 10, 0, 0, 0, 1])
            try await channel.writeAndFlush(bytes)
            // The server answers with a goaway and closes; it never waits for 2 GiB.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await channel.closeFuture.get() }
                group.addTask {
                    try await Task.sleep(for: .seconds(5))
                    throw POSClientError.connectionClosed
                }
                try await group.next()
                group.cancelAll()
            }
            #expect(!channel.isActive)
            // The server forgets the connection in its own close callback, a moment after the client sees it.
            let deadline = ContinuousClock.now + .seconds(3)
            while harness.listener.openConnections > 0 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(harness.listener.openConnections == 0)
        }
    }

    @Test("graceful shutdown sends goaway and closes idle connections")
    func goawayOnShutdown() async throws {
        try await POSHarness.with { harness in
            let pos = try await harness.authenticated()
            await harness.listener.drain()
            try await Task.sleep(for: .milliseconds(100))
            await #expect(throws: (any Error).self) { try await pos.ping() }
        }
    }
}
