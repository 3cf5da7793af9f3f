import Logging
import Synchronization

/// Connects a `RedisClient`'s `onRecovery` to the member caches on that client (the client is made first, so it
/// cannot be handed the cache itself):
///
///     let signal = RedisRecoverySignal()
///     let redis = RedisClient(configuration: configuration, logger: logger, onRecovery: { signal.fire() })
///     let cache = try MemberCache(redis: redis, recoverySignal: signal, logger: logger)
///
/// Guarantees: `fire` never blocks and never fails; every cache holding the signal moves to a new epoch before its
/// next command after a `fire`.
public final class RedisRecoverySignal: Sendable {
    private let count = Atomic<UInt64>(0)

    public init() {}

    public func fire() {
        count.wrappingAdd(1, ordering: .releasing)
    }

    var recoveries: UInt64 { count.load(ordering: .acquiring) }
}

/// What a cache knows about the shared epoch. Bumps and checks are counted, not flagged, so one asked for while
/// another is on its way is not mistaken for done.
struct MemberCacheEpochState {
    var epoch: Int64?
    var refreshedAt: ContinuousClock.Instant?
    /// Redis's run_id when the epoch was last read: a new one means a restart or failover.
    var runID: String?
    var bumpsRequested: UInt64 = 0
    var bumpsDone: UInt64 = 0
    /// A check reads the counter and run_id again before the next command, bumping only if they show a restart.
    var checksRequested: UInt64 = 0
    var checksDone: UInt64 = 0
    var recoveriesSeen: UInt64 = 0
    var bumpReason = ""
    /// The one read or bump of the counter on its way; concurrent lookups wait for it instead of sending their own.
    var task: Task<Result<Int64, CacheError>, Never>?

    /// What a failed command says about the data in Redis (the rules are in `MemberCache`'s "Epochs").
    mutating func noteFailure(_ error: CacheError, duringWrite: Bool) {
        switch error {
        case .tooManyPendingCommands where !duringWrite:
            break  // local back-pressure: nothing reached Redis
        case .timeout where !duringWrite:
            // A slow server, or one that died mid-command: look at its run_id before the next command, rather
            // than emptying the cache for every server over one slow answer.
            checksRequested += 1
        default:
            // A missed write, or Redis unreachable: what it holds may be older than PostgreSQL.
            bumpsRequested += 1
            bumpReason = error.description
        }
    }
}

extension MemberCache {
    /// The epoch in use, after reading the shared counter when it is due and moving to a new epoch when one was
    /// asked for. Call it once at startup so the first till lookup does not pay for the first read.
    @discardableResult
    public func epoch() async -> Result<Int64, CacheError> {
        await currentEpoch()
    }

    func noteFailure(_ error: CacheError, duringWrite: Bool) {
        epochState.withLock { $0.noteFailure(error, duringWrite: duringWrite) }
        // Whatever makes Redis's content doubtful makes the local copies of it doubtful too; local back-pressure
        // (nothing reached Redis) does not.
        if case .tooManyPendingCommands = error, !duringWrite { return }
        local?.drop()
    }

    private enum EpochStep {
        case use(Int64)
        case wait(Task<Result<Int64, CacheError>, Never>)
    }

    func currentEpoch() async -> Result<Int64, CacheError> {
        let recoveries = recoverySignal?.recoveries
        // The bumps and checks asked for before this call: those must be done before it may go on.
        var needed: (bumps: UInt64, checks: UInt64)?
        for _ in 0..<4 {
            let now = ContinuousClock.now
            let (step, requested): (EpochStep, (bumps: UInt64, checks: UInt64)) = epochState.withLock { state in
                if let recoveries, recoveries != state.recoveriesSeen {
                    state.recoveriesSeen = recoveries
                    state.bumpsRequested += 1
                    state.bumpReason = "the Redis client recovered from an outage"
                }
                let requested = needed ?? (state.bumpsRequested, state.checksRequested)
                let satisfied =
                    state.epoch != nil && state.bumpsDone >= requested.bumps && state.checksDone >= requested.checks
                if let task = state.task {
                    // A refresh on its way: callers that need nothing new go on with the epoch they have.
                    return (satisfied ? .use(state.epoch!) : .wait(task), requested)
                }
                let due = state.refreshedAt.map { now - $0 >= configuration.epochRefreshInterval } ?? true
                if satisfied, !due { return (.use(state.epoch!), requested) }
                let task = startEpochTask(&state)
                return (.wait(task), requested)
            }
            needed = requested
            switch step {
            case .use(let epoch):
                return .success(epoch)
            case .wait(let task):
                if case .failure(let error) = await task.value { return .failure(error) }
            }
        }
        return .failure(.protocolError("the member cache epoch did not settle"))
    }

    private func startEpochTask(_ state: inout MemberCacheEpochState) -> Task<Result<Int64, CacheError>, Never> {
        let target = state.bumpsRequested
        let checkTarget = state.checksRequested
        let bumpReason = target > state.bumpsDone ? state.bumpReason : nil
        let known = state.epoch
        let knownRunID = state.runID
        let task = Task {
            let result: Result<SettledEpoch, CacheError>
            do throws(CacheError) {
                result = .success(
                    try await self.settleEpoch(bumpReason: bumpReason, known: known, knownRunID: knownRunID))
            } catch {
                result = .failure(error)
            }
            let answer = self.epochState.withLock { state -> (Result<Int64, CacheError>, moved: Bool) in
                state.task = nil
                switch result {
                case .success(let settled):
                    let moved = state.epoch != nil && state.epoch != settled.epoch
                    state.epoch = settled.epoch
                    state.refreshedAt = .now
                    state.runID = settled.runID
                    if settled.bumped { state.bumpsDone = max(state.bumpsDone, target) }
                    state.checksDone = max(state.checksDone, checkTarget)
                    return (.success(settled.epoch), moved)
                case .failure(let error):
                    state.noteFailure(error, duringWrite: false)
                    return (.failure(error), true)
                }
            }
            // Entries of the old epoch are never found under the new one's keys; dropping frees their memory.
            if answer.moved { self.local?.drop() }
            return answer.0
        }
        state.task = task
        return task
    }

    private struct SettledEpoch: Sendable {
        var epoch: Int64
        var runID: String?
        var bumped: Bool
    }

    /// Reads the counter, or bumps it when asked to or when Redis shows it restarted, lost or rolled back.
    private func settleEpoch(bumpReason: String?, known: Int64?, knownRunID: String?) async throws(CacheError)
        -> SettledEpoch
    {
        let runID = try await serverRunID()
        var reason = bumpReason
        if reason == nil, let knownRunID, let runID, knownRunID != runID {
            reason = "Redis restarted or failed over (run_id \(knownRunID) → \(runID))"
        }
        if reason == nil {
            let reply = try await redis.send(["GET", keys.epoch])
            switch (reply.string.flatMap { Int64($0) }, known) {
            case (let stored?, nil):
                return SettledEpoch(epoch: stored, runID: runID, bumped: false)
            case (let stored?, let known?) where stored >= known:
                return SettledEpoch(epoch: stored, runID: runID, bumped: false)
            case (let stored?, let known?):
                reason = "the epoch counter went back from \(known) to \(stored)"
            case (nil, nil):
                reason = "there is no epoch yet"
            case (nil, _?):
                reason = "the epoch counter was lost"
            }
        }
        let reply = try await MemberCacheScripts.bumpEpoch.run(
            on: redis, keys: [keys.epoch], arguments: [Array(String(known ?? 0).utf8)])
        guard let epoch = reply.integer else { throw .protocolError("the epoch bump answered \(reply)") }
        counters.epochBumps.add(1, ordering: .relaxed)
        logger.notice(
            "member cache moved to a new epoch; values cached before are no longer read",
            metadata: [
                "epoch": "\(epoch)", "previous_epoch": "\(known.map(String.init) ?? "none")",
                "reason": "\(reason ?? "")",
            ])
        return SettledEpoch(epoch: epoch, runID: runID, bumped: true)
    }

    /// Redis's run_id, which changes on every restart and differs between a primary and its replica. nil when the
    /// server does not tell (INFO renamed or restricted): then only the counter's value is checked.
    private func serverRunID() async throws(CacheError) -> String? {
        let reply: RedisValue
        do {
            reply = try await redis.send(["INFO", "server"])
        } catch {
            if case .server = error { return nil }
            throw error
        }
        guard let text = reply.string else { return nil }
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("run_id:") {
            return String(line.dropFirst("run_id:".count))
        }
        return nil
    }
}
