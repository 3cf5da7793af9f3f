import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import LoyaltyCache
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import NIOCore
import NIOSSL
import POSProtocol
import Testing

/// Certificates made for one test: a CA the server trusts for tills, the server's certificate for "localhost" and a
/// till's certificate from it, and a second CA that nobody trusts with a till certificate of its own.
struct TLSFixture: Sendable {
    let trusted: ThrowawayCA
    let stranger: ThrowawayCA
    let server: (certificate: String, key: String)
    let till: (certificate: String, key: String)
    let strangerTill: (certificate: String, key: String)

    static func with(_ body: (TLSFixture) async throws -> Void) async throws {
        try await ThrowawayCA.withDirectory { directory in
            let trusted = try ThrowawayCA(name: "trusted", directory: directory)
            let stranger = try ThrowawayCA(name: "stranger", directory: directory)
            try await body(TLSFixture(
                trusted: trusted, stranger: stranger,
                server: try trusted.issue(file: "server", commonName: "loyalty server", dnsName: "localhost"),
                till: try trusted.issue(file: "till", commonName: "till-1"),
                strangerTill: try stranger.issue(file: "stranger-till", commonName: "till-1")))
        }
    }

    func listener(clientCertificatesRequired: Bool = false) throws -> ListenerTLS {
        try ListenerTLS(
            certificatePath: server.certificate, privateKeyPath: server.key,
            clientCAPath: clientCertificatesRequired ? trusted.certificateFile : nil, listener: "POS")
    }

    /// A till's TLS that trusts `ca` (the right one unless told otherwise) and presents `certificate` if given.
    func client(trusting ca: ThrowawayCA? = nil, certificate: (certificate: String, key: String)? = nil) throws -> POSClientTLS {
        try POSClientTLS(
            trustRootsFile: (ca ?? trusted).certificateFile, certificateFile: certificate?.certificate,
            privateKeyFile: certificate?.key, serverHostname: "localhost")
    }
}

@Suite("POS and admin listeners over TLS")
struct TLSListenerTests {
    /// A member with a card and a till that has said Hello over `tls`; answers the member's id from a Lookup.
    static func helloAndLookup(_ harness: POSHarness, tls: POSClientTLS) async throws -> (expected: Int64, found: Int64) {
        let card = "TLS-\(UUID().uuidString.prefix(8))"
        let member = try await MemberStore(client: harness.client, logger: TestServices.logger).create(NewMember(cardNumber: card))
        let pos = try await harness.connect(tls: tls)
        defer { Task { await pos.close() } }
        try await pos.hello(terminalID: harness.terminalID, secret: harness.secret)
        let summary = try await pos.call(.lookup, lookup(card: card)).decode(Loyalty_Pos_V1_MemberSummary.self)
        return (member, summary.memberID)
    }

    @Test("a till that trusts the server's CA completes Hello and a Lookup over TLS; one that trusts another CA refuses the server")
    func serverCertificate() async throws {
        try await TLSFixture.with { fixture in
            try await POSHarness.with(tls: try fixture.listener()) { harness in
                let answer = try await Self.helloAndLookup(harness, tls: try fixture.client())
                #expect(answer.found == answer.expected)

                await #expect {
                    _ = try await harness.connect(tls: try fixture.client(trusting: fixture.stranger))
                } throws: { error in
                    if case .tls = error as? POSClientError { return true }
                    return false
                }
            }
        }
    }

    @Test("with client certificates required, the CA's till gets in; a till with another CA's certificate, or none, is refused")
    func clientCertificates() async throws {
        try await TLSFixture.with { fixture in
            try await POSHarness.with(tls: try fixture.listener(clientCertificatesRequired: true)) { harness in
                let answer = try await Self.helloAndLookup(harness, tls: try fixture.client(certificate: fixture.till))
                #expect(answer.found == answer.expected)

                // Under TLS 1.3 the client finishes its half of the handshake before the server has judged its
                // certificate, so the refusal may come at connect or at the first request: either way, no Hello.
                for refused in [try fixture.client(certificate: fixture.strangerTill), try fixture.client()] {
                    await #expect(throws: (any Error).self) {
                        let pos = try await harness.connect(tls: refused)
                        defer { Task { await pos.close() } }
                        try await pos.hello(terminalID: harness.terminalID, secret: harness.secret)
                    }
                }
                // The refusals left the listener serving.
                let again = try await Self.helloAndLookup(harness, tls: try fixture.client(certificate: fixture.till))
                #expect(again.found == again.expected)
            }
        }
    }

    @Test("plain TCP to the TLS port is refused: the connection closes without a POS answer")
    func plainTCPRefused() async throws {
        try await TLSFixture.with { fixture in
            try await POSHarness.with(tls: try fixture.listener()) { harness in
                let plain = try await harness.connect()
                await #expect(throws: POSClientError.connectionClosed) { try await plain.ping() }
                await plain.close()
                let fresh = try await harness.connect()
                await #expect(throws: POSClientError.connectionClosed) {
                    try await fresh.hello(terminalID: harness.terminalID, secret: harness.secret)
                }
                await fresh.close()
                let answer = try await Self.helloAndLookup(harness, tls: try fixture.client())
                #expect(answer.found == answer.expected)
            }
        }
    }

    @Test("the admin API answers over HTTPS to a client that trusts the CA; plain HTTP to that port gets no answer")
    func adminHTTPS() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        try await TLSFixture.with { fixture in
            try await TestServices.withClient(try TestServices.databaseURL()) { postgres in
                let tls = try ListenerTLS(
                    certificatePath: fixture.server.certificate, privateKeyPath: fixture.server.key, listener: "admin")
                let app = AdminApplication.build(
                    host: "127.0.0.1", port: 0,
                    probe: ReadinessProbe(postgres: postgres, redis: redis, databaseTarget: "test", timeoutMs: 3_000),
                    logger: TestServices.logger, openAPIPath: AdminHarness.openAPIPath, tls: tls)
                // The test framework's own client skips verification; ours checks the chain and the name.
                try await app.test(.ahc(.https)) { testClient in
                    let port = try #require(testClient.port)
                    var configuration = TLSConfiguration.makeClientConfiguration()
                    configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(fixture.trusted.certificateFile))
                    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: configuration))
                    do {
                        let response = try await http.execute(HTTPClientRequest(url: "https://localhost:\(port)/health"), timeout: .seconds(10))
                        #expect(response.status == .ok)
                        await #expect(throws: (any Error).self) {
                            _ = try await http.execute(HTTPClientRequest(url: "http://localhost:\(port)/health"), timeout: .seconds(10))
                        }
                    } catch {
                        try await http.shutdown()
                        throw error
                    }
                    try await http.shutdown()
                }
            }
        }
    }
}

@Suite("TLS configuration")
struct TLSConfigurationTests {
    @Test("a missing file, a file that is not PEM and a key that does not fit the certificate are refused, each naming the file")
    func badFiles() async throws {
        try await TLSFixture.with { fixture in
            let missing = fixture.trusted.directory.appendingPathComponent("missing.pem").path
            do {
                _ = try ListenerTLS(certificatePath: missing, privateKeyPath: fixture.server.key, listener: "POS")
                Issue.record("a missing certificate file was accepted")
            } catch {
                #expect("\(error)".contains("cannot read the POS TLS certificate \(missing): no such file"))
            }
            do {
                _ = try ListenerTLS(certificatePath: fixture.server.key, privateKeyPath: fixture.server.key, listener: "POS")
                Issue.record("a key given as the certificate was accepted")
            } catch {
                #expect("\(error)".contains("the POS TLS certificate \(fixture.server.key)"))
            }
            do {
                _ = try ListenerTLS(certificatePath: fixture.server.certificate, privateKeyPath: fixture.till.key, listener: "admin")
                Issue.record("a key of another certificate was accepted")
            } catch {
                #expect("\(error)".contains("does not fit the certificate \(fixture.server.certificate)"))
            }
            do {
                _ = try ListenerTLS(
                    certificatePath: fixture.server.certificate, privateKeyPath: fixture.server.key, clientCAPath: missing, listener: "POS")
                Issue.record("a missing client CA file was accepted")
            } catch {
                #expect("\(error)".contains("POS client CA file \(missing)"))
            }
            let good = try fixture.listener(clientCertificatesRequired: true)
            #expect(good.requiresClientCertificate)
            #expect(good.configuration.minimumTLSVersion == .tlsv12)
            // The fixture's certificates are valid for a day.
            #expect(good.expiryWarning(now: Date())?.contains("within 30 days; replace it and restart before then") == true)
            #expect(good.expiryWarning(now: Date() + 2 * 86_400)?.contains("expired at") == true)
            #expect(good.expiryWarning(now: Date(), warningDays: 0) == nil)
        }
    }

    @Test("plain TCP is refused on an address other than loopback unless allowed per listener; loopback needs nothing")
    func plaintextOffLoopback() async throws {
        try await TLSFixture.with { fixture in
            var configuration = ServerConfiguration(
                databaseURL: try DatabaseURL("postgres://loyalty@127.0.0.1:5432/loyalty"), redisURL: try RedisURL("redis://127.0.0.1:6379"))
            for loopback in ["127.0.0.1", "127.0.0.53", "::1", "localhost"] {
                configuration.bindHost = loopback
                #expect(throws: Never.self) { try configuration.checkTransport() }
            }
            configuration.bindHost = "0.0.0.0"
            #expect { try configuration.checkTransport() } throws: { error in
                "\(error)".hasPrefix("the POS listener would speak plain TCP on 0.0.0.0") && "\(error)".contains("--pos-insecure")
            }
            configuration.posTLS = try fixture.listener()
            #expect { try configuration.checkTransport() } throws: { error in
                "\(error)".hasPrefix("the admin listener would speak plain TCP on 0.0.0.0") && "\(error)".contains("--admin-tls-cert")
            }
            configuration.adminPlaintextAllowed = true
            #expect(throws: Never.self) { try configuration.checkTransport() }
            configuration.posTLS = nil
            configuration.bindHost = "10.1.2.3"
            #expect(throws: StartupError.self) { try configuration.checkTransport() }
            configuration.posPlaintextAllowed = true
            #expect(throws: Never.self) { try configuration.checkTransport() }
        }
    }
}

@Suite("Command line: TLS options of serve and pos")
struct TLSCommandLineTests {
    static func serve(_ arguments: [String]) async throws -> CommandLineTests.Run {
        try await CommandLineTests.run(["serve"] + arguments, databaseURL: try CommandLineTests.databaseURLText("loyalty"))
    }

    @Test("serve refuses half a TLS pair, an unreadable certificate and plain TCP off loopback, before contacting anything")
    func serveRefusals() async throws {
        try await TLSFixture.with { fixture in
            let halfPair = try await Self.serve(["--pos-tls-cert", fixture.server.certificate])
            #expect(halfPair.status == 1)
            #expect(halfPair.stderr.contains("--pos-tls-cert was given without --pos-tls-key"), "\(halfPair.stderr)")

            let caAlone = try await Self.serve(["--pos-tls-client-ca", fixture.trusted.certificateFile])
            #expect(caAlone.stderr.contains("--pos-tls-client-ca needs --pos-tls-cert and --pos-tls-key"), "\(caAlone.stderr)")

            let missing = fixture.trusted.directory.appendingPathComponent("nope.pem").path
            let unreadable = try await Self.serve(["--admin-tls-cert", missing, "--admin-tls-key", fixture.server.key])
            #expect(unreadable.status == 1)
            #expect(unreadable.stderr.contains("cannot read the admin TLS certificate \(missing): no such file"), "\(unreadable.stderr)")

            let exposed = try await Self.serve(["--host", "0.0.0.0"])
            #expect(exposed.status == 1)
            #expect(exposed.stderr.contains("the POS listener would speak plain TCP on 0.0.0.0"), "\(exposed.stderr)")
        }
    }

    @Test("loyalty pos pings a TLS listener with --tls-ca and --tls-server-name, and a client certificate when required")
    func posOverTLS() async throws {
        try await TLSFixture.with { fixture in
            try await POSHarness.with(tls: try fixture.listener(clientCertificatesRequired: true)) { harness in
                let connection = [
                    "--port", "\(harness.port)", "--terminal", harness.terminalID,
                    "--secret", Data(harness.secret).base64EncodedString(),
                    "--tls-ca", fixture.trusted.certificateFile, "--tls-server-name", "localhost",
                ]
                let run = try await CommandLineTests.run(
                    ["pos", "ping"] + connection + ["--tls-cert", fixture.till.certificate, "--tls-key", fixture.till.key], databaseURL: nil)
                #expect(run.status == 0, "\(run.stderr)")
                #expect(run.stdout.hasPrefix("pong in"))

                let keyless = try await CommandLineTests.run(["pos", "ping"] + connection + ["--tls-cert", fixture.till.certificate], databaseURL: nil)
                #expect(keyless.status == 1)
                #expect(keyless.stderr.contains("give both (--tls-cert and --tls-key)"), "\(keyless.stderr)")
            }
        }
    }
}
