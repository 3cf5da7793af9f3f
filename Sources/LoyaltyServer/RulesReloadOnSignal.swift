import Dispatch
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reloads the rules on SIGHUP, the usual "re-read your configuration" signal.
public struct RulesReloadOnSignal: Service {
    let rules: CurrentRules

    public init(rules: CurrentRules) { self.rules = rules }

    public func run() async throws {
        let (signals, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP)
        source.setEventHandler { continuation.yield() }
        source.resume()
        defer { source.cancel() }
        await withGracefulShutdownHandler {
            for await _ in signals { rules.reload() }
        } onGracefulShutdown: {
            continuation.finish()
        }
    }
}
