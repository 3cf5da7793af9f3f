import NIOCore

/// What a listening address exposes: loopback addresses are reachable from this machine only, so plain TCP there
/// crosses no network.
enum ListenAddress {
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        guard let address = try? SocketAddress(ipAddress: host, port: 0) else { return false }
        switch address {
        case .v4(let v4):
            // 127.0.0.0/8; s_addr is in network byte order.
            return UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127
        case .v6:
            return address.ipAddress == "::1"
        case .unixDomainSocket:
            return true
        }
    }
}
