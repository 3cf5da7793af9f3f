import Foundation
import PostgresPipeline
import Synchronization
import Testing

@Suite("libpq pipeline connection", .serialized, .timeLimit(.minutes(3)))
struct PipelineConnectionTests {
    @Test("a simple select returns its columns, rows and command tag")
    func simpleSelect() async throws {
        try await PipelineTests.withConnection { connection in
            let result = try await connection.execute("SELECT 1 AS one, 'x'::text AS two, NULL::int AS three")
            #expect(result.columns == ["one", "two", "three"])
            #expect(result.rows == [["1", "x", nil]])
            #expect(result.commandTag == "SELECT 1")
            #expect(result.value(row: 0, column: "two") == "x")
            let many = try await connection.execute("SELECT i FROM generate_series(1, 3) AS i")
            #expect(many.rows == [["1"], ["2"], ["3"]])
            #expect(many.rowsAffected == 3)
        }
    }

    @Test("text parameters carry NULL and unicode; binary parameters carry bytes")
    func parameters() async throws {
        try await PipelineTests.withConnection { connection in
            let text = "Grüße, 日本語, emoji 🎉, quote ' and backslash \\"
            let result = try await connection.execute(
                "SELECT $1::text, $2::text IS NULL, $3::int + 1, length($1::text), $4::text",
                [text, nil, "41", ""])
            #expect(result.rows == [[text, "t", "42", "\(text.count)", ""]])

            let bytes = try await connection.execute(
                PipelineStatement(sql: "SELECT $1::bytea, length($1::bytea)", parameters: [.binary([0, 1, 0xFF], type: 17)]))
            #expect(bytes.rows == [["\\x0001ff", "3"]])

            // A text parameter with NUL cannot be sent in text format: refused before sending, the connection goes on.
            await #expect(throws: PipelineError.client("a text parameter contains NUL")) {
                try await connection.execute("SELECT $1::text", ["a\u{0}b"])
            }
            #expect(try await connection.execute("SELECT 2").scalar == "2")
        }
    }

    @Test("a prepared statement is prepared once per connection and runs with different parameters")
    func preparedStatements() async throws {
        try await PipelineTests.withConnection { connection in
            let sql = "SELECT $1::int * 2"
            let results = await connection.execute(batch: (1...5).map { PipelineStatement.prepared("double", sql, ["\($0)"]) })
            #expect(try results.map { try $0.get().scalar } == ["2", "4", "6", "8", "10"])
            let count = try await connection.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'double'")
            #expect(count.scalar == "1")
            // One name stands for one SQL text.
            await #expect(throws: PipelineError.client("prepared statement double already stands for other SQL text")) {
                try await connection.execute(.prepared("double", "SELECT $1::int * 3", ["1"]))
            }
            // A statement that fails to prepare fails with its SQLSTATE and is not remembered as prepared.
            for _ in 0..<2 {
                let error = await #expect(throws: PipelineError.self) {
                    try await connection.execute(.prepared("broken", "SELEC 1"))
                }
                #expect(error?.sqlState == "42601")
            }
        }
    }

    @Test("1,000 concurrent calls on one connection are all answered, each with its own answer")
    func thousandConcurrent() async throws {
        try await PipelineTests.withConnection({ $0.maxInFlight = 64 }) { connection in
            _ = try await connection.execute("CREATE TEMP SEQUENCE pipeline_order")
            let answers = Collected<(Int, Int)>()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<1_000 {
                    group.addTask {
                        let result = try await connection.execute("SELECT $1::int, nextval('pipeline_order')", ["\(i)"])
                        #expect(result.rows.count == 1)
                        #expect(result.rows[0][0] == "\(i)")
                        answers.append((i, Int(result.rows[0][1]!)!))
                    }
                }
                try await group.waitForAll()
            }
            let all = answers.all
            #expect(all.count == 1_000)
            #expect(Set(all.map(\.0)) == Set(0..<1_000))
            // One connection, one statement at a time on the server: every call saw its own sequence value.
            #expect(Set(all.map(\.1)) == Set(1...1_000))
            #expect(connection.outstanding == 0)
            #expect(connection.connectCount == 1)
        }
    }

    @Test("a batch of 1,000 is executed and answered in the order it was queued")
    func batchInOrder() async throws {
        try await PipelineTests.withConnection({ $0.maxInFlight = 64 }) { connection in
            _ = try await connection.execute("CREATE TEMP SEQUENCE pipeline_batch_order")
            // Two batches and single calls interleaved: each batch stays contiguous and in order.
            async let other = connection.execute(batch: (0..<500).map { PipelineStatement("SELECT -$1::int, nextval('pipeline_batch_order')", ["\($0)"]) })
            let results = await connection.execute(
                batch: (0..<1_000).map { PipelineStatement("SELECT $1::int, nextval('pipeline_batch_order')", ["\($0)"]) })
            let otherResults = await other
            let rows = try results.map { try $0.get().rows[0] }
            #expect(rows.map { $0[0] } == (0..<1_000).map { "\($0)" })
            let sequence = rows.map { Int($0[1]!)! }
            #expect(sequence == Array(sequence[0]..<(sequence[0] + 1_000)))
            let otherSequence = try otherResults.map { Int(try $0.get().rows[0][1]!)! }
            #expect(otherSequence == Array(otherSequence[0]..<(otherSequence[0] + 500)))
        }
    }

    @Test("an error in one call fails only that call, with its SQLSTATE, message and detail; the others succeed")
    func errorIsolation() async throws {
        try await PipelineTests.withConnection { connection async throws in
            let statements = [
                PipelineStatement("SELECT 1"),
                PipelineStatement("SELECT 1 / 0"),
                PipelineStatement("SELECT 3"),
                PipelineStatement(
                    "DO $$ BEGIN RAISE EXCEPTION 'custom failure' USING ERRCODE = 'LY001', DETAIL = 'the detail', HINT = 'a hint'; END $$"),
                PipelineStatement("SELECT 5"),
            ]
            let results = await connection.execute(batch: statements)
            #expect(try results[0].get().scalar == "1")
            #expect(try results[2].get().scalar == "3")
            #expect(try results[4].get().scalar == "5")
            guard case .failure(PipelineError.server(let division)) = results[1] else {
                Issue.record("expected a server error, got \(results[1])")
                return
            }
            #expect(division.sqlState == "22012")
            #expect(division.message == "division by zero")
            #expect(division.severity == "ERROR")
            guard case .failure(PipelineError.server(let custom)) = results[3] else {
                Issue.record("expected a server error, got \(results[3])")
                return
            }
            #expect(custom.sqlState == "LY001")
            #expect(custom.message == "custom failure")
            #expect(custom.detail == "the detail")
            #expect(custom.hint == "a hint")
            #expect(!PipelineError.server(custom).isRetryable)
            #expect(!PipelineError.server(custom).mayHaveCommitted)
            // The same through single concurrent calls.
            let bad = Task { try await connection.execute("SELECT 1 / $1::int", ["0"]) }
            let good = Task { try await connection.execute("SELECT 1 / $1::int", ["1"]) }
            let error = await #expect(throws: PipelineError.self) { try await bad.value }
            #expect(error?.sqlState == "22012")
            #expect(try await good.value.scalar == "1")
        }
    }

    @Test("a call returns only after its commit: visible at once elsewhere; a failing commit, or a backend killed while committing, fails the call")
    func acknowledgedAtCommit() async throws {
        let table = "acknowledged"
        try await PipelineTests.withScratchDatabase { database in
            try await PipelineTests.withConnection(to: database) { reader in try await PipelineTests.withConnection(to: database) { writer in
                // The deferred trigger runs at commit, i.e. at the Sync, after the INSERT's CommandComplete: it sleeps
                // 300 ms there, and rejects negative values. A driver that answered at CommandComplete would report
                // the rejected INSERT as a success, and so the INSERT of a backend killed while committing.
                for sql in [
                    "CREATE TABLE \(table) (id int PRIMARY KEY, value int NOT NULL)",
                    """
                    CREATE FUNCTION \(table)_check() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        PERFORM pg_sleep(0.3);
                        IF NEW.value < 0 THEN
                            RAISE EXCEPTION 'negative value at commit' USING ERRCODE = 'LY002';
                        END IF;
                        RETURN NULL;
                    END $$
                    """,
                    """
                    CREATE CONSTRAINT TRIGGER \(table)_at_commit AFTER INSERT ON \(table)
                    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION \(table)_check()
                    """,
                ] {
                    _ = try await writer.execute(sql)
                }
                let started = ContinuousClock.now
                let inserted = try await writer.execute("INSERT INTO \(table) VALUES (1, 10)")
                #expect(inserted.commandTag == "INSERT 0 1")
                #expect(ContinuousClock.now - started >= .milliseconds(300))
                let seen = try await reader.execute("SELECT value FROM \(table) WHERE id = 1")
                #expect(seen.rows == [["10"]])

                let error = await #expect(throws: PipelineError.self) {
                    try await writer.execute("INSERT INTO \(table) VALUES (2, -1)")
                }
                #expect(error?.sqlState == "LY002")
                let absent = try await reader.execute("SELECT count(*) FROM \(table) WHERE id = 2")
                #expect(absent.scalar == "0")

                // The backend stopped while committing (in the deferred trigger, after the INSERT's CommandComplete):
                // PostgreSQL flushes the CommandComplete with its farewell message, but the row never committed. The
                // call must not report success.
                let pid = try #require(writer.backendPID)
                let doomed = Task { try await writer.execute("INSERT INTO \(table) VALUES (3, 30)") }
                try await PipelineTests.waitUntil {
                    writer.inFlight == 1
                }
                var committing = false
                for _ in 0..<200 where !committing {
                    let activity = try await reader.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND wait_event = 'PgSleep'", ["\(pid)"])
                    committing = activity.scalar == "1"
                    if !committing { try await Task.sleep(for: .milliseconds(5)) }
                }
                #expect(committing)
                #expect(try await reader.execute("SELECT pg_terminate_backend($1::int)", ["\(pid)"]).scalar == "t")
                let lost = await #expect(throws: PipelineError.self) { try await doomed.value }
                #expect(lost?.mayHaveCommitted == true)
                #expect(try await reader.execute("SELECT count(*) FROM \(table) WHERE id = 3").scalar == "0")
            } }
        }
    }

    @Test("a terminated backend fails every call in flight at once as outcome-unknown, and the next call reconnects")
    func terminatedBackend() async throws {
        try await PipelineTests.withConnection { admin in try await PipelineTests.withConnection { connection in
            _ = try await connection.execute(.prepared("triple", "SELECT $1::int * 3", ["1"]))
            let pid = try #require(connection.backendPID)
            #expect(try await connection.execute("SELECT pg_backend_pid()").scalar == "\(pid)")

            let outcomes = Collected<(Result<PipelineResult, PipelineError>, ContinuousClock.Instant)>()
            let group = Task {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<50 {
                        group.addTask {
                            do {
                                outcomes.append((.success(try await connection.execute("SELECT pg_sleep(0.2)")), .now))
                            } catch let error as PipelineError {
                                outcomes.append((.failure(error), .now))
                            } catch {
                                Issue.record("unexpected error \(error)")
                            }
                        }
                    }
                }
            }
            // Wait until all 50 are queued or sent and the first sleep runs on the backend, then kill the backend.
            try await PipelineTests.waitUntil { connection.outstanding + outcomes.all.count == 50 }
            var running = false
            for _ in 0..<100 where !running {
                let activity = try await admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND state = 'active' AND query LIKE '%pg_sleep%'", ["\(pid)"])
                running = activity.scalar == "1"
                if !running { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(running)
            let killed = ContinuousClock.now
            #expect(try await admin.execute("SELECT pg_terminate_backend($1::int)", ["\(pid)"]).scalar == "t")
            await group.value

            let all = outcomes.all
            #expect(all.count == 50)
            let failures = all.compactMap { outcome -> (PipelineError, ContinuousClock.Instant)? in
                if case .failure(let error) = outcome.0 { return (error, outcome.1) }
                return nil
            }
            // A sleep or two may have finished before the kill on a busy machine; all the others were cut off.
            #expect(failures.count >= 45)
            for (error, at) in failures {
                guard case .outcomeUnknown = error else {
                    Issue.record("expected outcomeUnknown, got \(error)")
                    continue
                }
                #expect(error.isRetryable)
                #expect(error.mayHaveCommitted)
                #expect(at - killed < .seconds(1))
            }

            // The next call reconnects (a new backend) and works, prepared statements included.
            let next = try await connection.execute("SELECT pg_backend_pid()")
            #expect(next.scalar != "\(pid)")
            #expect(connection.connectCount == 2)
            #expect(try await connection.execute(.prepared("triple", "SELECT $1::int * 3", ["5"])).scalar == "15")
        } }
    }

    @Test("a call whose deadline passed before it was sent is not sent")
    func deadline() async throws {
        let table = "deadlines"
        try await PipelineTests.withScratchDatabase { database in
            try await PipelineTests.withConnection(to: database, { $0.maxInFlight = 1 }) { connection in
                _ = try await connection.execute("CREATE TABLE \(table) (id int)")
                // Already expired when called.
                await #expect(throws: PipelineError.deadlineExceeded) {
                    try await connection.execute(PipelineStatement("INSERT INTO \(table) VALUES (1)", deadline: .now - .milliseconds(1)))
                }
                // Expires while queued behind a slow statement (one in flight at a most): failed by the connection's
                // thread when the deadline passes, long before the slow one ends.
                let slow = Task { try await connection.execute("SELECT pg_sleep(0.6)") }
                try await PipelineTests.waitUntil { connection.inFlight == 1 }
                let started = ContinuousClock.now
                await #expect(throws: PipelineError.deadlineExceeded) {
                    try await connection.execute(PipelineStatement("INSERT INTO \(table) VALUES (2)", deadline: .now + .milliseconds(100)))
                }
                #expect(ContinuousClock.now - started < .milliseconds(400))
                _ = try await slow.value
                // A deadline not reached is no obstacle.
                _ = try await connection.execute(PipelineStatement("INSERT INTO \(table) VALUES (3)", deadline: .now + .seconds(10)))
                #expect(try await connection.execute("SELECT string_agg(id::text, ',') FROM \(table)").scalar == "3")
        }
        }
    }

    @Test("a cancelled call that was not sent yet is never sent; one already sent is answered")
    func cancellation() async throws {
        let table = "cancelled"
        try await PipelineTests.withScratchDatabase { database in
            try await PipelineTests.withConnection(to: database, { $0.maxInFlight = 1 }) { connection in
                _ = try await connection.execute("CREATE TABLE \(table) (id int)")
                let slow = Task { try await connection.execute("SELECT pg_sleep(0.5), 'slept'") }
                try await PipelineTests.waitUntil { connection.inFlight == 1 }
                let queued = Task { try await connection.execute("INSERT INTO \(table) VALUES (1)") }
                try await PipelineTests.waitUntil { connection.queued == 1 }
                queued.cancel()
                await #expect(throws: CancellationError.self) { try await queued.value }
                #expect(connection.queued == 0)
                #expect(connection.inFlight == 1)
                // The sleep was sent: cancelling its task does not interrupt the wait for its answer.
                slow.cancel()
                #expect(try await slow.value.rows == [["", "slept"]])
                #expect(try await connection.execute("SELECT count(*) FROM \(table)").scalar == "0")
                // Cancelled before the call: not sent either.
                let early = Task {
                    withUnsafeCurrentTask { $0?.cancel() }
                    return try await connection.execute("INSERT INTO \(table) VALUES (2)")
                }
                await #expect(throws: CancellationError.self) { try await early.value }
                #expect(try await connection.execute("SELECT count(*) FROM \(table)").scalar == "0")
        }
        }
    }

    @Test("a full queue refuses further calls at once")
    func queueFull() async throws {
        try await PipelineTests.withConnection({ $0.maxInFlight = 1; $0.maxQueued = 2 }) { connection in
            let slow = Task { try await connection.execute("SELECT pg_sleep(0.4)") }
            try await PipelineTests.waitUntil { connection.inFlight == 1 }
            let first = Task { try await connection.execute("SELECT 0") }
            try await PipelineTests.waitUntil { connection.queued == 1 }
            let second = Task { try await connection.execute("SELECT 1") }
            try await PipelineTests.waitUntil { connection.queued == 2 }
            let queued = [first, second]
            let started = ContinuousClock.now
            await #expect(throws: PipelineError.queueFull(limit: 2)) { try await connection.execute("SELECT 'too many'") }
            #expect(ContinuousClock.now - started < .milliseconds(250))
            #expect(PipelineError.queueFull(limit: 2).isRetryable)
            _ = try await slow.value
            #expect(try await queued[0].value.scalar == "0")
            #expect(try await queued[1].value.scalar == "1")
        }
    }

    @Test("close drains what is queued, then refuses; closing without draining fails what is left")
    func close() async throws {
        let connection = try await PipelineTests.connect { $0.maxInFlight = 2 }
        let calls = Task {
            await connection.execute(batch: (0..<20).map { PipelineStatement("SELECT $1::int, pg_sleep(0.01)", ["\($0)"]) })
        }
        try await PipelineTests.waitUntil { connection.queued > 0 }
        await connection.close()
        #expect(try await calls.value.map { try $0.get().scalar } == (0..<20).map { "\($0)" })
        await #expect(throws: PipelineError.closed) { try await connection.execute("SELECT 1") }
        #expect(!connection.isConnected)

        let abrupt = try await PipelineTests.connect { $0.maxInFlight = 1 }
        let sleeping = Task { try await abrupt.execute("SELECT pg_sleep(2)") }
        try await PipelineTests.waitUntil { abrupt.inFlight == 1 }
        let waiting = Task { try await abrupt.execute("SELECT 1") }
        try await PipelineTests.waitUntil { abrupt.queued == 1 }
        let started = ContinuousClock.now
        await abrupt.close(drain: false)
        #expect(ContinuousClock.now - started < .seconds(1))
        await #expect(throws: PipelineError.outcomeUnknown(reason: "connection closed")) { try await sleeping.value }
        await #expect(throws: PipelineError.closed) { try await waiting.value }
    }

    @Test("no server: connecting fails with unavailable")
    func unavailable() async throws {
        var configuration = try PipelineTests.configuration()
        configuration.conninfo = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
        let started = ContinuousClock.now
        let error = await #expect(throws: PipelineError.self) { try await PipelineConnection.connect(configuration) }
        guard case .unavailable = error else {
            Issue.record("expected unavailable, got \(String(describing: error))")
            return
        }
        #expect(error?.isRetryable == true)
        #expect(error?.mayHaveCommitted == false)
        #expect(ContinuousClock.now - started < .seconds(3))
    }
}

extension PipelineConnectionTests {
    @Suite("libpq pipeline pool")
    struct Pool {
        @Test("a pool spreads concurrent calls over all its connections and answers each")
        func roundTrip() async throws {
            let pool = try await PipelinePool.connect(try PipelineTests.configuration(), size: 4)
            let pids = Collected<String>()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<400 {
                    group.addTask {
                        let result = try await pool.execute("SELECT $1::int, pg_backend_pid(), pg_sleep(0.001)", ["\(i)"])
                        #expect(result.rows[0][0] == "\(i)")
                        pids.append(result.rows[0][1]!)
                    }
                }
                try await group.waitForAll()
            }
            #expect(pids.all.count == 400)
            let expected = Set(pool.connections.compactMap { $0.backendPID.map { "\($0)" } })
            #expect(expected.count == 4)
            #expect(Set(pids.all) == expected)
            let batch = await pool.execute(batch: [PipelineStatement("SELECT 1"), PipelineStatement("SELECT 2")])
            #expect(try batch.map { try $0.get().scalar } == ["1", "2"])
            await pool.close()
            await #expect(throws: PipelineError.closed) { try await pool.execute("SELECT 1") }
            #expect(pool.connections.allSatisfy { !$0.isConnected })
        }
    }
}

extension PipelineConnectionTests {
    @Test("a server that goes away fails calls in flight as outcome-unknown, fails calls fast while down, and is reconnected to when back")
    func serverDownAndBack() async throws {
        var configuration = try PipelineTests.configuration()
        let target = try #require(URLComponents(string: configuration.conninfo)?.port)
        let proxy = try TestProxy(targetPort: UInt16(target))
        configuration.conninfo = try TestProxy.url(configuration.conninfo, port: proxy.port)
        configuration.initialBackoff = .milliseconds(300)
        configuration.maxBackoff = .milliseconds(600)
        let connection = try await PipelineConnection.connect(configuration)
        #expect(try await connection.execute("SELECT 1").scalar == "1")

        // The server goes away with ten statements in flight.
        let calls = (0..<10).map { _ in Task { try await connection.execute("SELECT pg_sleep(0.5)") } }
        try await PipelineTests.waitUntil { connection.inFlight == 10 }
        let cut = ContinuousClock.now
        proxy.down()
        for call in calls {
            let error = await #expect(throws: PipelineError.self) { try await call.value }
            #expect(error?.mayHaveCommitted == true)
        }
        #expect(ContinuousClock.now - cut < .seconds(1))

        // While it is away, calls fail without being sent, and at once (not after the next attempt, 300 ms or more
        // away): the first reconnection attempt was refused.
        try await PipelineTests.waitUntil { !connection.isConnected }
        for _ in 0..<3 {
            let started = ContinuousClock.now
            let error = await #expect(throws: PipelineError.self) { try await connection.execute("SELECT 1") }
            guard case .unavailable = error else {
                Issue.record("expected unavailable, got \(String(describing: error))")
                break
            }
            #expect(error?.isRetryable == true)
            #expect(ContinuousClock.now - started < .milliseconds(250))
        }

        // Back: within the longest backoff, calls work again on a new connection.
        try proxy.up()
        let back = ContinuousClock.now
        var answer: String?
        while answer == nil, ContinuousClock.now - back < .seconds(3) {
            do {
                answer = try await connection.execute("SELECT 'back'").scalar
            } catch PipelineError.unavailable {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(answer == "back")
        #expect(ContinuousClock.now - back < .milliseconds(1_500))
        #expect(connection.connectCount == 2)
        await connection.close()
        proxy.down()
    }
}

extension PipelineConnectionTests {
    @Test("cancelling a batch removes its statements not sent yet; the ones sent are answered")
    func batchCancellation() async throws {
        try await PipelineTests.withScratchDatabase { database in
            try await PipelineTests.withConnection(to: database, { $0.maxInFlight = 2 }) { connection in
                _ = try await connection.execute("CREATE TABLE batched (id int)")
                let statements = [PipelineStatement("SELECT pg_sleep(0.3)"), PipelineStatement("SELECT pg_sleep(0.3)")]
                    + (1...5).map { PipelineStatement("INSERT INTO batched VALUES ($1::int)", ["\($0)"]) }
                let batch = Task { await connection.execute(batch: statements) }
                try await PipelineTests.waitUntil { connection.inFlight == 2 && connection.queued == 5 }
                batch.cancel()
                let results = await batch.value
                #expect(try results[0].get().rows == [[""]])
                #expect(try results[1].get().rows == [[""]])
                for result in results[2...] {
                    #expect(throws: CancellationError.self) { try result.get() }
                }
                #expect(try await connection.execute("SELECT count(*) FROM batched").scalar == "0")
            }
        }
    }
}
