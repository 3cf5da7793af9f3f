import Foundation
import Synchronization

/// Groups commits that arrive while earlier ones are in the database into one `pos_commit_batch` call: one round
/// trip and one WAL flush for many tills. Nothing waits on a timer: with little traffic every commit goes alone at
/// once; under load the queue that builds while `maximumInFlight` batches are in the database becomes the next
/// batch. The queue is bounded; past it a commit is refused at once as unavailable (the till retries).
public final class CommitBatcher: Sendable {
    public struct Limits: Sendable {
        /// Batches in the database at once (each holds one pool connection).
        public var maximumInFlight = 4
        public var maximumBatch = CheckoutStore.maximumBatch
        public var maximumQueued = 4_096

        public init() {}
    }

    typealias Answer = Result<(result: CommitResult, member: Data), LedgerStoreError>

    struct Pending {
        let commit: POSCommit
        let pricing: POSCommitPricing
        let continuation: CheckedContinuation<Answer, Never>
    }

    struct State {
        var queue: [Pending] = []
        var inFlight = 0
    }

    let store: CheckoutStore
    let limits: Limits
    private let state = Mutex(State())
    /// How many commits went in batches of each size, for the metrics and the load-test report.
    private let batchedCommits = Atomic<Int>(0)
    private let batches = Atomic<Int>(0)

    public init(store: CheckoutStore, limits: Limits = Limits()) {
        precondition(limits.maximumInFlight > 0 && (1...CheckoutStore.maximumBatch).contains(limits.maximumBatch) && limits.maximumQueued > 0)
        self.store = store
        self.limits = limits
    }

    /// Commits per database call so far (1.0 = no batching happened).
    public var averageBatchSize: Double {
        let count = batches.load(ordering: .relaxed)
        return count == 0 ? 0 : Double(batchedCommits.load(ordering: .relaxed)) / Double(count)
    }

    public func commit(_ commit: POSCommit, pricing: POSCommitPricing) async throws(LedgerStoreError) -> (result: CommitResult, member: Data) {
        let answer = await withCheckedContinuation { (continuation: CheckedContinuation<Answer, Never>) in
            enum Decision { case refuse, wait, flush([Pending]) }
            let decision: Decision = state.withLock { state in
                guard state.queue.count < limits.maximumQueued else { return .refuse }
                state.queue.append(Pending(commit: commit, pricing: pricing, continuation: continuation))
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
        return try answer.get()
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
            let answers: [Answer]
            if batch.count == 1, let only = batch.first {
                do { answers = [.success(try await store.commit(only.commit, pricing: only.pricing))] } catch { answers = [.failure(error)] }
            } else {
                answers = await store.commitBatch(batch.map { ($0.commit, $0.pricing) })
            }
            batches.add(1, ordering: .relaxed)
            batchedCommits.add(batch.count, ordering: .relaxed)
            for (pending, answer) in zip(batch, answers) { pending.continuation.resume(returning: answer) }
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
