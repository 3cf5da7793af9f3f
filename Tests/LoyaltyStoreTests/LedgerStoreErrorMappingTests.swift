@testable import LoyaltyStore
import Testing

/// A PostgreSQL restart must reach the till as a retryable UNAVAILABLE, not as a final INTERNAL error.
@Suite struct LedgerStoreErrorMappingTests {
    @Test(arguments: ["57P01", "57P02", "57P03", "08006", "08003"])
    func sessionEndedIsUnavailable(state: String) {
        #expect(LedgerStoreError.from(state: state, detail: nil, description: "terminating connection").code == "store_unavailable")
    }

    @Test func otherServerErrorsStayDatabaseErrors() {
        #expect(LedgerStoreError.from(state: "23505", detail: nil, description: "duplicate key").code == "database")
        #expect(LedgerStoreError.from(state: "LY001", detail: "{\"bucket\":\"available\"}", description: "").code == "insufficient_balance")
    }
}
