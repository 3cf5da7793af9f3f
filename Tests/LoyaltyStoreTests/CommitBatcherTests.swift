import Foundation
import LoyaltyCore
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

private func pricing(award: Int64) -> POSCommitPricing {
    let now = Date()
    return POSCommitPricing(
        pricedAtTier: "base", unit: .points, award: award, availableAt: now.addingTimeInterval(14 * 86_400),
        expiresAt: now.addingTimeInterval(730 * 86_400), rulesVersion: "test", explanationJSON: "{\"test\":true}",
        spendMinor: award * 100, paidTotalMinor: award * 100,
        lines: [CheckoutLine(lineID: "1", quantity: 1, paidMinor: award * 100, award: award)])
}

private func commit(_ txn: String, member: Int64, redeem: Int64 = 0) -> POSCommit {
    POSCommit(terminalID: "till-b", posTransactionID: txn, memberID: member,
              basket: Basket(currency: "EUR", lines: [BasketLine(lineID: "1", sku: "1", category: "grocery", quantity: 1, unitPriceMinor: 100)]),
              holdID: nil, redeemPoints: redeem, purchasedAtMs: 0, purchasedAt: Date())
}

@Suite("Batched commits")
struct CommitBatcherTests {
    @Test("concurrent commits share database calls; each succeeds or fails on its own; retries in the same batch apply once")
    func batchesKeepItemsIndependent() async throws {
        try await TestServices.withMigratedDatabase { url, client in
            let members = MemberStore(client: client, logger: TestServices.logger)
            var created: [Int64] = []
            for index in 0..<8 { created.append(try await members.create(NewMember(cardNumber: "BATCH-\(index)"))) }
            let ids = created
            let ledger = LedgerStore(client: client, logger: TestServices.logger)
            _ = try await ledger.adjust(AdjustmentRequest(memberID: ids[0], unit: .points, delta: 1_000, reason: "seed", actor: "t"),
                                        key: IdempotencyKey(scope: "t", key: "seed"))
            var limits = CommitBatcher.Limits()
            limits.maximumInFlight = 1  // everything after the first call queues, so batches form for sure
            let writer = try await CheckoutWriter.connect(url: url, connections: 2, logger: TestServices.logger)
            let batcher = CommitBatcher(writer: writer, limits: limits)

            // 60 commits over 8 members; member 0 also redeems: 2 of its 3 redemptions of 500 can be paid.
            // Each of the 10 "dup" ids is sent 3 times.
            let outcomes = try await withThrowingTaskGroup(of: (String, Result<CommitResult, LedgerStoreError>).self) { group in
                for index in 0..<30 {
                    group.addTask {
                        let txn = "T\(index)"
                        let member = ids[index % 8]
                        let redeem: Int64 = index % 8 == 0 && index < 24 ? 500 : 0
                        do throws(LedgerStoreError) {
                            return (txn, .success(try await batcher.commit(commit(txn, member: member, redeem: redeem), pricing: pricing(award: 10)).result))
                        } catch {
                            return (txn, .failure(error))
                        }
                    }
                }
                for index in 0..<30 {
                    group.addTask {
                        let txn = "dup\(index % 10)"
                        do throws(LedgerStoreError) {
                            return (txn, .success(try await batcher.commit(commit(txn, member: ids[1]), pricing: pricing(award: 7)).result))
                        } catch {
                            return (txn, .failure(error))
                        }
                    }
                }
                return try await group.reduce(into: [(String, Result<CommitResult, LedgerStoreError>)]()) { $0.append($1) }
            }
            #expect(outcomes.count == 60)
            #expect(batcher.averageBatchSize > 1.5, "commits did not share calls: \(batcher.averageBatchSize)")
            let failures = outcomes.compactMap { outcome -> String? in
                if case .failure(let error) = outcome.1 { return "\(outcome.0): \(error.code)" }
                return nil
            }
            #expect(failures.count == 1 && failures.allSatisfy { $0.hasSuffix("insufficient_balance") }, "\(failures)")
            let duplicates = outcomes.filter { $0.0.hasPrefix("dup") }.compactMap { try? $0.1.get() }
            #expect(duplicates.filter { !$0.replayed }.count == 10)
            #expect(Set(duplicates.map(\.accrualEntryId)).count == 10)

            let rows = try await client.query("SELECT count(*)::int8 FROM pos_checkouts")
            var checkouts: Int64 = -1
            for try await count in rows.decode(Int64.self) { checkouts = count }
            #expect(checkouts == 39)  // 29 that could be paid + 10 distinct duplicates
            let balance = try await ledger.balances(memberID: ids[0], unit: .points)
            #expect(balance.available == 0)
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)
            await writer.close()
        }
    }

    @Test("a backend terminated under a batch: every waiting commit gets a retryable answer within a second, and the retry applies once")
    func killedBackendFailsWaitersAtOnce() async throws {
        try await TestServices.withMigratedDatabase { url, client in
            let members = MemberStore(client: client, logger: TestServices.logger)
            var created: [Int64] = []
            for index in 0..<6 { created.append(try await members.create(NewMember(cardNumber: "KILL-\(index)"))) }
            let ids = created
            let writer = try await CheckoutWriter.connect(url: url, connections: 1, logger: TestServices.logger)
            let batcher = CommitBatcher(writer: writer)
            // The members are locked, so the batch waits inside PostgreSQL until its backend is terminated.
            let lock = try await RowLock.hold(client, "SELECT member_id FROM members FOR UPDATE")
            // Each waiter notes when its answer came (not when the test got round to reading it), and the
            // termination's time is when pg_terminate_backend answered: the backend was gone by then.
            let outcomes = try await withThrowingTaskGroup(of: (Result<CommitAnswer, LedgerStoreError>, ContinuousClock.Instant).self) { group in
                for (index, member) in ids.enumerated() {
                    group.addTask {
                        do throws(LedgerStoreError) {
                            return (.success(try await batcher.commit(commit("K\(index)", member: member), pricing: pricing(award: 5))), .now)
                        } catch {
                            return (.failure(error), .now)
                        }
                    }
                }
                // Wait until the writer's backend is stuck on the lock, then terminate it.
                let deadline = ContinuousClock.now + .seconds(10)
                var waiting = false
                while !waiting && ContinuousClock.now < deadline {
                    let rows = try await client.query(
                        """
                        SELECT count(*)::int8 FROM pg_stat_activity
                        WHERE datname = current_database() AND application_name = 'loyalty-checkout' AND wait_event_type = 'Lock'
                        """)
                    for try await count in rows.decode(Int64.self) { waiting = count > 0 }
                    if !waiting { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(waiting, "the batch never reached the lock")
                _ = try await client.query(
                    """
                    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                    WHERE datname = current_database() AND application_name = 'loyalty-checkout'
                    """)
                let killedAt = ContinuousClock.now
                var results: [(Result<CommitAnswer, LedgerStoreError>, Duration)] = []
                for try await (result, answeredAt) in group { results.append((result, answeredAt - killedAt)) }
                return results
            }
            try await lock.release()
            #expect(outcomes.count == ids.count)
            for (result, after) in outcomes {
                guard case .failure(let error) = result, case .unavailable = error else {
                    Issue.record("expected a retryable unavailable answer, got \(result)")
                    continue
                }
                #expect(after < .seconds(1), "answered \(after) after the backend was terminated")
            }
            // The retry, with the same ids, applies each commit once.
            for (index, member) in ids.enumerated() {
                var answer: CommitAnswer?
                for _ in 0..<50 where answer == nil {  // the connection comes back after a short backoff
                    do {
                        answer = try await batcher.commit(commit("K\(index)", member: member), pricing: pricing(award: 5))
                    } catch let error as LedgerStoreError {
                        guard case .unavailable = error else { throw error }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                #expect(answer?.result.awarded == 5)
            }
            let rows = try await client.query("SELECT count(*)::int8 FROM pos_checkouts")
            for try await count in rows.decode(Int64.self) { #expect(count == Int64(ids.count)) }
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)
            await writer.close()
        }
    }
}
