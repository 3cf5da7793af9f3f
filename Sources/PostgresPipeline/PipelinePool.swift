import Synchronization

/// A fixed set of `PipelineConnection`s. Each call goes to the connection with the fewest statements outstanding
/// (ties in round-robin order), skipping connections that are down while any other one accepts calls.
public final class PipelinePool: Sendable {
    public let connections: [PipelineConnection]
    private let turn = Atomic<Int>(0)
    private let closed = Atomic<Bool>(false)

    private init(connections: [PipelineConnection]) {
        self.connections = connections
    }

    /// Opens `size` connections (concurrently); throws if any of them cannot connect, closing the others.
    public static func connect(_ configuration: PipelineConfiguration, size: Int = 4) async throws -> PipelinePool {
        precondition(size > 0, "a pool needs at least one connection")
        let results = await withTaskGroup(of: (Int, Result<PipelineConnection, any Error>).self) { group in
            for index in 0..<size {
                group.addTask {
                    do {
                        return (index, .success(try await PipelineConnection.connect(configuration)))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            var results: [(Int, Result<PipelineConnection, any Error>)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
        let connections = results.compactMap { try? $0.get() }
        if connections.count < size {
            for connection in connections { await connection.close(drain: false) }
            for result in results {
                if case .failure(let error) = result { throw error }
            }
        }
        return PipelinePool(connections: connections)
    }

    /// Runs the statement on the least-loaded connection; see `PipelineConnection.execute`.
    public func execute(_ statement: PipelineStatement) async throws -> PipelineResult {
        guard !closed.load(ordering: .acquiring) else { throw PipelineError.closed }
        return try await pick().execute(statement)
    }

    /// Runs the batch on the least-loaded connection; see `PipelineConnection.execute(batch:)`.
    public func execute(batch statements: [PipelineStatement]) async -> [Result<PipelineResult, any Error>] {
        guard !closed.load(ordering: .acquiring) else { return statements.map { _ in .failure(PipelineError.closed) } }
        return await pick().execute(batch: statements)
    }

    /// `execute(PipelineStatement(sql, parameters))`.
    public func execute(_ sql: String, _ parameters: [String?] = []) async throws -> PipelineResult {
        try await execute(PipelineStatement(sql, parameters))
    }

    /// Closes every connection (see `PipelineConnection.close(drain:)`), concurrently. New calls fail with
    /// `PipelineError.closed` at once.
    public func close(drain: Bool = true) async {
        closed.store(true, ordering: .releasing)
        await withTaskGroup(of: Void.self) { group in
            for connection in connections {
                group.addTask { await connection.close(drain: drain) }
            }
        }
    }

    private func pick() -> PipelineConnection {
        let count = connections.count
        let start = turn.wrappingAdd(1, ordering: .relaxed).oldValue
        var best: (connection: PipelineConnection, accepting: Bool, outstanding: Int)?
        for offset in 0..<count {
            let connection = connections[((start & Int.max) % count + offset) % count]
            let load = connection.load
            if load.accepting && load.outstanding == 0 { return connection }
            if let current = best {
                if (load.accepting && !current.accepting)
                    || (load.accepting == current.accepting && load.outstanding < current.outstanding) {
                    best = (connection, load.accepting, load.outstanding)
                }
            } else {
                best = (connection, load.accepting, load.outstanding)
            }
        }
        return best!.connection
    }
}
