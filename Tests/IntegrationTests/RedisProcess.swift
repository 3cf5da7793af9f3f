import Foundation
import LoyaltyCache
import LoyaltyTestSupport

/// A redis-server on a port the test chooses, optionally keeping its data in a directory, to restart Redis on
/// the same address (ScratchRedis picks a new port each time and keeps nothing).
final class RedisProcess: Sendable {
    let url: RedisURL
    private let process: Process

    private init(url: RedisURL, process: Process) {
        self.url = url
        self.process = process
    }

    static func start(port: Int, directory: String? = nil) async throws -> RedisProcess {
        var arguments = [
            "redis-server", "--bind", "127.0.0.1", "--port", "\(port)", "--save", "", "--appendonly", "no",
            "--logfile", "",
        ]
        if let directory { arguments += ["--dir", directory, "--dbfilename", "dump.rdb"] }
        let url = RedisURL(host: "127.0.0.1", port: port)
        let probe = RedisClient(configuration: .init(url: url), logger: TestServices.logger)
        defer { Task { await probe.shutdown() } }
        // A killed server's port may take a moment to free: start again until one stays up and answers.
        for _ in 0..<20 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let server = RedisProcess(url: url, process: process)
            for _ in 0..<40 where process.isRunning {
                if (try? await probe.ping()) != nil { return server }
                try await Task.sleep(for: .milliseconds(50))
            }
            server.stop()
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RedisProcessError(description: "redis-server on port \(port) did not start")
    }

    /// SIGKILL, like a crash, and waits until the process is gone so its port is free again.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}

struct RedisProcessError: Error, CustomStringConvertible {
    let description: String
}
