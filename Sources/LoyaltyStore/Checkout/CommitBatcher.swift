import Foundation
import Synchronization

/// Groups commits that arrive while earlier ones are in the database into one `checkout_commit_batch` call: one
/// round trip and one WAL flush for many tills. Nothing waits on a timer: with little traffic every commit goes
/// alone at once; under load the queue that builds while `maximumInFlight` batches are in the database becomes the
/// next batch. Batches in flight share the ledger's connections (`CheckoutWriter`: pipelined). The queue is
/// bounded; past it a commit
/// is refused at once as unavailable (the till retries). A commit whose deadline passed while it was queued, or
/// whose task was cancelled (its till disconnected), is not sent.
public final class CommitBatcher: Sendable {
    public struct Limits: Sendable {
        /// Batches in the database at once.
        public var maximumInFlight = 8
        /// At most the ledger's own `maximumBatch`.
        public var maximumBatch = CheckoutWriter.maximumBatch
        public var maximumQueued = 4_096

        public init() {}
    }

    typealias Answer = Result<CommitAnswer, LedgerStoreError>

    struct Pending {
        let id: UInt64
        let commit: POSCommit
        let pricing: POSCommitPricing
        let deadline: ContinuousClock.Instant?
        let continuation: CheckedContinuation<Answer, Never>
    }

    struct State {
        var queue: [Pending] = []
        var inFlight = 0
    }

    /// The ledger behind the seam: one call per batch, so the existential costs nothing per commit.
    let ledger: any CheckoutLedger
    let limits: Limits
    private let state = Mutex(State())
    private let batchedCommits = Atomic<Int>(0)
    private let batches = Atomic<Int>(0)
    private let nextID = Atomic<UInt64>(0)

    public init(ledger: any CheckoutLedger, limits: Limits = Limits()) {
        precondition(limits.maximumInFlight > 0 && (1...ledger.maximumBatch).contains(limits.maximumBatch) && limits.maximumQueued > 0)
        self.ledger = ledger
        self.limits = limits
    }

    public convenience init(writer: CheckoutWriter, limits: Limits = Limits()) {
        self.init(ledger: writer, limits: limits)
    }

    /// Commits per database call so far (1.0 = no batching happened).
    public var averageBatchSize: Double {
        let count = batches.load(ordering: .relaxed)
        return count == 0 ? 0 : Double(batchedCommits.load(ordering: .relaxed)) / Double(count)
    }

    public func commit(
        _ commit: POSCommit, pricing: POSCommitPricing, deadline: ContinuousClock.Instant? = nil
    ) async throws(LedgerStoreError) -> CommitAnswer {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let answer = await withTaskCancellationHandler {
            await enqueue(id: id, commit, pricing: pricing, deadline: deadline)
        } onCancel: {
            // Still queued: answered here and never sent. Already in a batch: it runs to its answer.
            let removed: Pending? = state.withLock { state in
                guard let index = state.queue.firstIndex(where: { $0.id == id }) else { return nil }
                return state.queue.remove(at: index)
            }
            removed?.continuation.resume(returning: .failure(.unavailable("cancelled before it was sent (the till disconnected); nothing was written")))
        }
        return try answer.get()
    }

    private func enqueue(
        id: UInt64, _ commit: POSCommit, pricing: POSCommitPricing, deadline: ContinuousClock.Instant?
    ) async -> Answer {
        guard !Task.isCancelled else { return .failure(.unavailable("cancelled before it was sent; nothing was written")) }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Answer, Never>) in
            enum Decision { case refuse, wait, flush([Pending]) }
            let decision: Decision = state.withLock { state in
                guard state.queue.count < limits.maximumQueued else { return .refuse }
                state.queue.append(Pending(id: id, commit: commit, pricing: pricing, deadline: deadline, continuation: continuation))
                guard state.inFlight < limits.maximumInFlight else { return .wait }
                state.inFlight += 1
                return .flush(take(&state))
            }
            switch decision {
            case .refuse:
                continuation.resume(returning: .failure(.unavailable("the commit queue is full (\(limits.maximumQueued)); retry with the same id")))
            case .wait:
                break
            case .flush(let batch):
                Task { await self.drain(startingWith: batch) }
            }
        }
    }

    private func take(_ state: inout State) -> [Pending] {
        let count = min(limits.maximumBatch, state.queue.count)
        let batch = Array(state.queue.prefix(count))
        state.queue.removeFirst(count)
        return batch
    }

    /// Sends batches until the queue is empty, then gives its in-flight slot back.
    private func drain(startingWith first: [Pending]) async {
        var batch = first
        while !batch.isEmpty {
            // Past its deadline the till has stopped waiting: such a commit is answered, not sent.
            let now = ContinuousClock.now
            let (expired, live) = (batch.filter { $0.deadline.map { $0 <= now } ?? false },
                                   batch.filter { $0.deadline.map { $0 > now } ?? true })
            for pending in expired {
                pending.continuation.resume(returning: .failure(.unavailable(
                    "the request's deadline passed before it reached the ledger; nothing was written, retry with the same id")))
            }
            if !live.isEmpty {
                // Sent only while at least one till still waits: the latest deadline of the batch, or none.
                let deadline = live.contains { $0.deadline == nil } ? nil : live.compactMap(\.deadline).max()
                let answers = await ledger.commitBatch(live.map { ($0.commit, $0.pricing) }, deadline: deadline)
                batches.add(1, ordering: .relaxed)
                batchedCommits.add(live.count, ordering: .relaxed)
                for (pending, answer) in zip(live, answers) { pending.continuation.resume(returning: answer) }
            }
            batch = state.withLock { state in
                if state.queue.isEmpty {
                    state.inFlight -= 1
                    return []
                }
                return take(&state)
            }
        }
    }
}
