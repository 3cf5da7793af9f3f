import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Admin API: a report cancelled at its statement timeout")
struct AdminReportTimeoutTests {
    @Test("is 503 report_timed_out with Retry-After, not 500; the same report answers once the database is free")
    func statementTimeout() async throws {
        var policy = AdminPolicy()
        policy.reportStatementTimeoutMs = 200
        try await AdminHarness.run(policy: policy) { api in
            // The liability report reads accounts; an exclusive lock keeps it waiting past its timeout.
            let lock = try await RowLock.hold(api.postgres, "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
            let busy = try await api.call(.get, "/v1/reports/liability", token: api.readonly)
            try await lock.release()
            let problem = busy.expectProblem(.serviceUnavailable, "report_timed_out")
            #expect(busy.headers[.retryAfter] == "1")
            #expect(problem["detail"]?.string?.contains("200 ms statement timeout") == true, "\(problem)")

            #expect(try await api.call(.get, "/v1/reports/liability", token: api.readonly).status == .ok)
        }
    }
}
