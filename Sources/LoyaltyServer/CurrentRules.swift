import Foundation
import Logging
import LoyaltyRules
import LoyaltyStore
import Synchronization

/// The rules in force, swapped whole on reload. A reload that fails keeps the rules in force and says why, so a
/// typo in a file never takes the tills down. Each loaded set carries its version (content hash), which every
/// ledger entry it produces records.
///
/// It also remembers which versions were in force when (`rules(at:)`), so a till replaying sales it made while
/// offline is priced by the rules of the purchase time, not of the replay. With a history store attached, that
/// memory is shared by every server and survives restarts.
public final class CurrentRules: Sendable {
    struct State {
        var current: LoadedRules
        /// (activated at, rules), oldest first, at most `RulesHistoryStore.maximumVersions`.
        var history: [(activatedAt: Date, rules: LoadedRules)]
    }

    private let state: Mutex<State>
    public let directory: URL
    private let logger: Logger

    /// Loads the rules once; a bad folder at start is an error (there is nothing to fall back to).
    public init(directory: URL, logger: Logger) throws(StartupError) {
        let loaded: LoadedRules
        do {
            loaded = try RulesLoader.load(directory: directory)
        } catch {
            throw .rules("rules in \(directory.path) are invalid:\n\(error)")
        }
        state = Mutex(State(current: loaded, history: [(Date(), loaded)]))
        self.directory = directory
        self.logger = logger
    }

    public var current: LoadedRules { state.withLock { $0.current } }

    /// The rules in force at `instant`: the latest activated at or before it, or the oldest known one for an
    /// instant older than all of them.
    public func rules(at instant: Date) -> LoadedRules {
        state.withLock { state in
            state.history.last(where: { $0.activatedAt <= instant })?.rules ?? state.history.first?.rules ?? state.current
        }
    }

    public var knownVersions: [String] { state.withLock { $0.history.map(\.rules.version) } }

    /// When the rules in force were activated: by this process, or by any server once `synchronize` has run.
    public var currentActivatedAt: Date {
        state.withLock { state in
            state.history.last(where: { $0.rules.version == state.current.version })?.activatedAt ?? Date()
        }
    }

    /// Records the rules in force as activated (unless they already are the latest) and loads the recent history,
    /// so `rules(at:)` answers for times before this process started. Versions that no longer load are skipped.
    public func synchronize(with store: RulesHistoryStore) async throws {
        let loaded = current
        _ = try await store.activate(version: loaded.version, files: Array(zip(loaded.files, loaded.contents)).map { (name: $0.0, contents: $0.1) })
        var history: [(activatedAt: Date, rules: LoadedRules)] = []
        var parsed: [String: LoadedRules] = [loaded.version: loaded]
        for activation in try await store.recent() {
            if parsed[activation.version] == nil {
                do {
                    parsed[activation.version] = try RulesLoader.load(sources: activation.files)
                } catch {
                    logger.warning("stored rules version no longer loads; purchases from its time use a neighbour",
                                   metadata: ["version": "\(activation.version)", "error": "\(error)"])
                    continue
                }
            }
            history.append((activation.activatedAt, parsed[activation.version]!))
        }
        if history.isEmpty { history = [(Date(), loaded)] }
        state.withLock { $0.history = history }
    }

    public enum ReloadOutcome: Sendable, Equatable {
        case unchanged(version: String)
        case reloaded(from: String, to: String)
        case rejected(keptVersion: String, reason: String)
    }

    @discardableResult
    public func reload() -> ReloadOutcome { reloadReportingError().outcome }

    /// `reload`, with the loader's error when the rules were rejected (its `issues` name file, line and field).
    public func reloadReportingError() -> (outcome: ReloadOutcome, error: RulesError?) {
        let old = current.version
        do {
            let fresh = try RulesLoader.load(directory: directory)
            guard fresh.version != old else { return (.unchanged(version: old), nil) }
            state.withLock { state in
                state.current = fresh
                state.history.append((Date(), fresh))
                if state.history.count > RulesHistoryStore.maximumVersions { state.history.removeFirst() }
            }
            logger.notice("rules reloaded", metadata: ["from": "\(old)", "to": "\(fresh.version)"])
            return (.reloaded(from: old, to: fresh.version), nil)
        } catch {
            logger.error("rules reload rejected; keeping the rules in force", metadata: ["version": "\(old)", "error": "\(error)"])
            return (.rejected(keptVersion: old, reason: "\(error)"), error)
        }
    }

    /// Reloads, then records the new version in the shared history (if one is attached and the rules changed).
    @discardableResult
    public func reload(recordingIn store: RulesHistoryStore?) async -> ReloadOutcome {
        let outcome = reload()
        if case .reloaded = outcome, let store {
            do { try await synchronize(with: store) } catch {
                logger.error("could not record the reloaded rules in the history; offline replays on other servers may use the previous version",
                             metadata: ["error": "\(error)"])
            }
        }
        return outcome
    }
}
