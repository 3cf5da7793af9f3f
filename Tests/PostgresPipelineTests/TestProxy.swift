import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP proxy in front of PostgreSQL that a test can take down (every connection cut, new ones refused) and bring
/// back on the same port: a server crash and restart, seen from the client, without touching the shared server.
final class TestProxy: Sendable {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let port: UInt16
    private let targetPort: UInt16
    private let state = Mutex<(listener: Int32, sockets: Set<Int32>)>((-1, []))

    init(targetPort: UInt16) throws {
        self.targetPort = targetPort
        let listener = try Self.listen(port: 0)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        state.withLock { $0.listener = listener }
        startAccepting(listener)
    }

    /// Cuts every proxied connection and refuses new ones.
    func down() {
        state.withLock { state in
            if state.listener >= 0 {
                shutdown(state.listener, Int32(SHUT_RDWR))
                close(state.listener)
                state.listener = -1
            }
            for socket in state.sockets { shutdown(socket, Int32(SHUT_RDWR)) }
        }
    }

    /// Accepts connections again, on the same port.
    func up() throws {
        let listener = try Self.listen(port: port)
        state.withLock { $0.listener = listener }
        startAccepting(listener)
    }

    /// The database URL with the proxy's port instead of the server's.
    static func url(_ url: String, port: UInt16) throws -> String {
        guard var components = URLComponents(string: url) else { throw Failure(description: "not a URL: \(url)") }
        components.port = Int(port)
        return components.string!
    }

    private static func listen(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listenOn(fd) == 0 else {
            close(fd)
            throw Failure(description: "cannot listen on port \(port): errno \(errno)")
        }
        return fd
    }

    private func startAccepting(_ listener: Int32) {
        let thread = Thread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }
                guard let server = connectToTarget() else {
                    close(client)
                    continue
                }
                let admitted = state.withLock { state -> Bool in
                    guard state.listener == listener else { return false }
                    state.sockets.insert(client)
                    state.sockets.insert(server)
                    return true
                }
                guard admitted else {
                    close(client)
                    close(server)
                    return
                }
                let pair = Mutex(2)
                for (from, to) in [(client, server), (server, client)] {
                    Thread { [self] in
                        pump(from: from, to: to)
                        shutdown(from, Int32(SHUT_RDWR))
                        shutdown(to, Int32(SHUT_RDWR))
                        let last = pair.withLock { count in
                            count -= 1
                            return count == 0
                        }
                        if last {
                            state.withLock { state in
                                state.sockets.remove(client)
                                state.sockets.remove(server)
                            }
                            close(client)
                            close(server)
                        }
                    }.start()
                }
            }
        }
        thread.start()
    }

    private func connectToTarget() -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = targetPort.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    private func pump(from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(from, &buffer, buffer.count)
            guard count > 0 else { return }
            var sent = 0
            while sent < count {
                // send with MSG_NOSIGNAL: writing to a connection cut by `down()` must not raise SIGPIPE in the test process.
                let written = buffer[sent..<count].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard written > 0 else { return }
                sent += written
            }
        }
    }
}

private func listenOn(_ fd: Int32) -> Int32 {
    listen(fd, 64)
}
