import Foundation
import LoyaltyCore
import NIOCore
import POSProtocol
import SwiftProtobuf

/// Decodes arbitrary bytes as a request payload and applies what the server applies before any I/O.
///
/// Input layout: byte 0 selects the method (its protocol number when it is one of `methods`, otherwise an index
/// into `methods`), the rest is the payload. Checks: a decoded message re-encodes and decodes to itself, and the
/// pure validation (nonce and proof checks, basket validation, quote evaluation) holds the guarantees it documents.
public enum PayloadHarness {
    public static let methods: [Loyalty_Pos_V1_Method] = [
        .hello, .helloProof, .ping, .lookup, .quote, .hold, .commit, .cancel, .refund,
    ]

    public static func method(forSelector selector: UInt8) -> Loyalty_Pos_V1_Method {
        if let method = Loyalty_Pos_V1_Method(rawValue: Int(selector)), methods.contains(method) { return method }
        return methods[Int(selector) % methods.count]
    }

    public static func run(_ bytes: [UInt8]) {
        guard let selector = bytes.first else { return }
        // The server decodes from the frame's ByteBuffer copied into an array.
        let payload = Array(buffer: ByteBuffer(bytes: bytes.dropFirst()))
        switch method(forSelector: selector) {
        case .hello:
            if let request = roundTripped(Loyalty_Pos_V1_HelloRequest.self, payload) { HelloChecks.hello(request) }
        case .helloProof:
            if let proof = roundTripped(Loyalty_Pos_V1_HelloProof.self, payload) { HelloChecks.proof(proof) }
        case .ping:
            _ = roundTripped(Loyalty_Pos_V1_Empty.self, payload)
        case .lookup:
            _ = roundTripped(Loyalty_Pos_V1_LookupRequest.self, payload)
        case .quote:
            if let request = roundTripped(Loyalty_Pos_V1_QuoteRequest.self, payload) {
                QuoteChecks.check(request.basket, tierSelector: request.memberID,
                                  availableBalance: max(0, request.memberID))
            }
        case .hold:
            _ = roundTripped(Loyalty_Pos_V1_HoldRequest.self, payload)
        case .commit:
            if let request = roundTripped(Loyalty_Pos_V1_CommitRequest.self, payload) {
                // As the server prices a commit: the cap is the basket's, the ledger checks the balance.
                QuoteChecks.check(request.basket, tierSelector: request.memberID, availableBalance: Int64.max / 4)
            }
        case .cancel:
            _ = roundTripped(Loyalty_Pos_V1_CancelRequest.self, payload)
        case .refund:
            _ = roundTripped(Loyalty_Pos_V1_RefundRequest.self, payload)
        default:
            break
        }
    }

    /// Decodes as the server does; a decoded message must serialize and decode back to an equal message.
    static func roundTripped<M: SwiftProtobuf.Message & Equatable>(_ type: M.Type, _ payload: [UInt8]) -> M? {
        guard let message = try? M(serializedBytes: payload) else { return nil }
        let reencoded: [UInt8]
        do { reencoded = try message.serializedBytes() } catch {
            fuzzCheck(false, "\(M.protoMessageName) decoded but does not serialize: \(error)")
            return nil
        }
        let again = try? M(serializedBytes: reencoded)
        fuzzCheck(again == message, "\(M.protoMessageName) changed in a serialize/decode round trip")
        return message
    }
}
