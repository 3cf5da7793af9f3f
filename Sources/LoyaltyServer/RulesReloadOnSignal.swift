import Dispatch
import Logging
import LoyaltyStore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reloads the rules on SIGHUP, the usual "re-read your configuration" signal.
public struct RulesReloadOnSignal: Service {
    let rules: CurrentRules
    let history: RulesHistoryStore?

    public init(rules: CurrentRules, history: RulesHistoryStore? = nil) {
        self.rules = rules
        self.history = history
    }

    public func run() async throws {
        let (signals, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP)
        source.setEventHandler { continuation.yield() }
        source.resume()
        defer { source.cancel() }
        await withGracefulShutdownHandler {
            for await _ in signals { await rules.reload(recordingIn: history) }
        } onGracefulShutdown: {
            continuation.finish()
        }
    }
}
