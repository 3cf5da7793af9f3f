import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import Testing

@Suite("Admin API: problem details say what is wrong")
struct AdminMessageTests {
    @Test("an adjustment for an erased member says it was erased, not to unblock it")
    func erasedMember() async throws {
        try await AdminHarness.run { api in
            let id = try await api.createMember(#"{"card_number": "CARD-ERASED-1"}"#)
            #expect(try await api.call(.post, "/v1/members/\(id)/erase", token: api.admin).status == .ok)
            let problem = try await api.call(
                .post, "/v1/members/\(id)/adjustments", token: api.admin,
                json: #"{"unit": "points", "delta": 5, "reason": "after erasure"}"#
            ).expectProblem(.conflict, "member_not_active")
            let detail = try #require(problem["detail"]?.string)
            #expect(detail.contains("member \(id) was erased") && detail.contains("cannot receive adjustments"), "\(detail)")
            #expect(!detail.contains("unblock"), "\(detail)")
        }
    }

    @Test("a segment definition names the missing field, the malformed date with the expected format, and the expected type")
    func segmentFields() async throws {
        try await AdminHarness.run { api in
            let cases: [(String, String)] = [
                (#"{"purchases": {"min_count": 2}}"#,
                 #"field "definition.purchases.window_days" is missing; it is required when "purchases" is given; expected an integer from 1 to 3660"#),
                (#"{"last_purchase_after": "2025-13-01"}"#,
                 #"field "definition.last_purchase_after" is not a valid date-time: "2025-13-01"; expected an RFC 3339 date-time such as "2025-06-01T00:00:00Z""#),
                (#"{"last_purchase_before": "2025-06-01"}"#, #"field "definition.last_purchase_before" is not a valid date-time: "2025-06-01""#),
                (#"{"last_purchase_before": 20250601}"#, #"field "definition.last_purchase_before" has the wrong type; expected an RFC 3339 date-time"#),
                (#"{"birthday_month": "may"}"#, #"field "definition.birthday_month" has the wrong type; expected an integer from 1 to 12"#),
                (#"{"purchases": {"window_days": null}}"#, #"field "definition.purchases.window_days" is null"#),
            ]
            for (definition, detail) in cases {
                let problem = try await api.call(
                    .post, "/v1/segments/preview", token: api.marketer, json: #"{"definition": \#(definition)}"#
                ).expectProblem(.badRequest, "invalid_body")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(definition): \(problem["detail"]?.string ?? "")")
            }
        }
    }
}
