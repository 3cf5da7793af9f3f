import Foundation
import PostgresPipeline
import Testing

/// Throughput figures of `SELECT 1`, printed; run with PIPELINE_BENCH=1 (not part of the normal test run).
@Suite("libpq pipeline throughput", .serialized, .enabled(if: ProcessInfo.processInfo.environment["PIPELINE_BENCH"] != nil))
struct PipelineThroughputTests {
    /// Runs `total` calls of `SELECT 1` from `workers` tasks (each one call at a time) and returns calls per second.
    private func measure(workers: Int, total: Int, _ execute: @escaping @Sendable () async throws -> PipelineResult) async throws -> Double {
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var ok = 0
                    for _ in stride(from: worker, to: total, by: workers) where try await execute().scalar == "1" { ok += 1 }
                    return ok
                }
            }
            var ok = 0
            for try await count in group { ok += count }
            #expect(ok == total)
        }
        return Double(total) / ((ContinuousClock.now - started) / .seconds(1))
    }

    @Test("SELECT 1: sequential vs 64 in flight on one connection vs a pool of 4")
    func selectOne() async throws {
        let statement = PipelineStatement("SELECT 1")
        var configuration = try PipelineTests.configuration()
        configuration.maxInFlight = 64
        let connection = try await PipelineConnection.connect(configuration)
        _ = try await measure(workers: 64, total: 5_000) { try await connection.execute(statement) }  // warm-up
        let sequential = try await measure(workers: 1, total: 5_000) { try await connection.execute(statement) }
        let pipelined = try await measure(workers: 64, total: 50_000) { try await connection.execute(statement) }
        await connection.close()

        let pool = try await PipelinePool.connect(configuration, size: 4)
        _ = try await measure(workers: 64, total: 5_000) { try await pool.execute(statement) }
        let pooled64 = try await measure(workers: 64, total: 50_000) { try await pool.execute(statement) }
        let pooled256 = try await measure(workers: 256, total: 50_000) { try await pool.execute(statement) }
        let pooledSequential = try await measure(workers: 4, total: 20_000) { try await pool.execute(statement) }
        await pool.close()

        print(String(format: "one connection, sequential:         %8.0f statements/s", sequential))
        print(String(format: "one connection, 64 in flight:       %8.0f statements/s", pipelined))
        print(String(format: "pool of 4, 4 callers (1 per conn):  %8.0f statements/s", pooledSequential))
        print(String(format: "pool of 4, 64 in flight in total:   %8.0f statements/s", pooled64))
        print(String(format: "pool of 4, 256 in flight in total:  %8.0f statements/s", pooled256))
        #expect(pipelined > sequential)
    }
}
