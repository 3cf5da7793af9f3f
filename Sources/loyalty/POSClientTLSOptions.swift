import ArgumentParser
import POSProtocol

/// TLS of `loyalty pos`: on when any of these is given, off otherwise (a loopback server in plain TCP).
struct POSClientTLSOptions: ParsableArguments {
    @Flag(name: .customLong("tls"), help: "Connect over TLS, trusting the system's CAs unless --tls-ca is given.")
    var enabled = false

    @Option(name: .customLong("tls-ca"), help: "PEM CA certificates the server's certificate must chain to (env LOYALTY_POS_TLS_CA). Implies --tls.")
    var certificateAuthorities: String?

    @Option(name: .customLong("tls-cert"),
            help: "PEM certificate of this terminal, for a server that requires client certificates (env LOYALTY_TERMINAL_TLS_CERT). Implies --tls.")
    var certificate: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key of that certificate (env LOYALTY_TERMINAL_TLS_KEY).")
    var privateKey: String?

    @Option(name: .customLong("tls-server-name"),
            help: "Name the server's certificate must carry, sent as SNI; default the --host unless that is an IP address.")
    var serverName: String?

    func resolved() throws -> POSClientTLS? {
        let authorities = certificateAuthorities ?? environment("LOYALTY_POS_TLS_CA")
        let certificate = certificate ?? environment("LOYALTY_TERMINAL_TLS_CERT")
        let privateKey = privateKey ?? environment("LOYALTY_TERMINAL_TLS_KEY")
        guard enabled || authorities != nil || certificate != nil || privateKey != nil || serverName != nil else { return nil }
        do {
            return try POSClientTLS(
                trustRootsFile: authorities, certificateFile: certificate, privateKeyFile: privateKey, serverHostname: serverName)
        } catch {
            throw CommandFailure(error.description)
        }
    }
}
