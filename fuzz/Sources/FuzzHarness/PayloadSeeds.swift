import Foundation
import POSProtocol
import SwiftProtobuf

/// Seed request payloads: each method with a well-formed request, and baskets that hit each validation rule.
/// Written to fuzz/corpus/PayloadFuzzer prefixed by the method byte (see `PayloadHarness`).
public enum PayloadSeeds {
    public static func requests() -> [(name: String, method: Loyalty_Pos_V1_Method, payload: [UInt8])] {
        var seeds: [(String, Loyalty_Pos_V1_Method, [UInt8])] = [
            ("hello", .hello, hello()),
            ("hello-short-nonce", .hello, bytes(Loyalty_Pos_V1_HelloRequest.with {
                $0.protocolVersion = 1; $0.terminalID = FuzzFixtures.terminalID; $0.clientNonce = Data([1, 2, 3])
            })),
            ("hello-proof-genuine", .helloProof, bytes(Loyalty_Pos_V1_HelloProof.with {
                $0.clientProof = Data(TerminalAuth.clientProof(
                    secret: FuzzFixtures.terminalSecret, salt: HelloChecks.saltBytes, iterations: 1,
                    authMessage: FuzzFixtures.authMessage(serverNonce: HelloChecks.serverNonceBytes,
                                                          salt: HelloChecks.saltBytes)).proof)
            })),
            ("hello-proof-wrong", .helloProof, bytes(Loyalty_Pos_V1_HelloProof.with {
                $0.clientProof = Data(repeating: 7, count: 32)
            })),
            ("ping", .ping, []),
            ("lookup-card", .lookup, bytes(Loyalty_Pos_V1_LookupRequest.with { $0.cardNumber = "2900000000123" })),
            ("lookup-phone", .lookup, bytes(Loyalty_Pos_V1_LookupRequest.with { $0.phone = "+4915112345678" })),
            ("lookup-member", .lookup, bytes(Loyalty_Pos_V1_LookupRequest.with { $0.memberID = 42 })),
            ("hold", .hold, bytes(Loyalty_Pos_V1_HoldRequest.with {
                $0.posTransactionID = "T1-0001"; $0.memberID = 42; $0.points = 500; $0.holdSeconds = 300
            })),
            ("cancel", .cancel, bytes(Loyalty_Pos_V1_CancelRequest.with { $0.posTransactionID = "T1-0001" })),
            ("refund", .refund, bytes(Loyalty_Pos_V1_RefundRequest.with {
                $0.refundID = "R1"; $0.originalPosTransactionID = "T1-0001"
                $0.lines = [.with { $0.lineID = "1"; $0.quantity = 1 }, .with { $0.lineID = "2"; $0.quantity = 2 }]
            })),
        ]
        for (name, basket) in baskets() {
            seeds.append(("quote-\(name)", .quote, bytes(Loyalty_Pos_V1_QuoteRequest.with {
                $0.memberID = 2; $0.basket = basket
            })))
        }
        seeds.append(("commit-redeem", .commit, bytes(Loyalty_Pos_V1_CommitRequest.with {
            $0.posTransactionID = "T1-0002"; $0.memberID = 2; $0.basket = baskets()[0].basket; $0.redeemPoints = 500
        })))
        return seeds
    }

    public static func hello() -> [UInt8] {
        bytes(Loyalty_Pos_V1_HelloRequest.with {
            $0.protocolVersion = 1; $0.terminalID = FuzzFixtures.terminalID; $0.clientNonce = Data(FuzzFixtures.clientNonce)
        })
    }

    /// A valid mixed basket first, then one basket per validation rule it breaks.
    static func baskets() -> [(name: String, basket: Loyalty_Pos_V1_Basket)] {
        func line(_ id: String, _ sku: String, _ category: String, _ quantity: Int64, _ priceMinor: Int64,
                  _ discountMinor: Int64 = 0) -> Loyalty_Pos_V1_BasketLine {
            .with {
                $0.lineID = id; $0.sku = sku; $0.category = category; $0.quantity = quantity
                $0.unitPriceMinor = priceMinor; $0.discountMinor = discountMinor
            }
        }
        func basket(_ lines: [Loyalty_Pos_V1_BasketLine], currency: String = "EUR") -> Loyalty_Pos_V1_Basket {
            .with { $0.currency = currency; $0.lines = lines }
        }
        let valid = [
            line("1", "2000000000015", "own_brand", 2, 1_299),
            line("2", "4000000000001", "dairy", 3, 149, 50),
            line("3", "5000000000001", "tobacco", 1, 780),
            line("4", "6000000000001", "grocery", 1, 99),
        ]
        return [
            ("valid-mixed", basket(valid)),
            ("below-minimum", basket([line("1", "s", "grocery", 1, 99)])),
            ("wrong-currency", basket(valid, currency: "USD")),
            ("no-lines", basket([])),
            ("duplicate-line-id", basket([line("1", "a", "c", 1, 100), line("1", "b", "c", 1, 100)])),
            ("empty-sku", basket([line("1", "", "c", 1, 100)])),
            ("quantity-zero", basket([line("1", "a", "c", 0, 100)])),
            ("negative-price", basket([line("1", "a", "c", 1, -1)])),
            ("discount-over-gross", basket([line("1", "a", "c", 2, 100, 201)])),
            ("line-overflow", basket([line("1", "a", "c", 10_000, Int64.max / 2)])),
            ("basket-overflow", basket([line("1", "a", "c", 10_000, Int64.max / 10_001),
                                        line("2", "a", "c", 10_000, Int64.max / 10_001)])),
        ]
    }

    static func bytes(_ message: some SwiftProtobuf.Message) -> [UInt8] {
        try! message.serializedBytes()
    }
}
