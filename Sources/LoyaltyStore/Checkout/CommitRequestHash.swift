import LoyaltyCore

extension POSCommit {
    /// The idempotency hash of this commit, the same bytes as `requestHash("pos-commit", self)` gives, without
    /// JSONEncoder: the encoder was a few per cent of a commit's CPU. A stored key of an earlier commit must still
    /// match its retry, so the JSON is byte for byte what JSONEncoder writes with sorted keys and milliseconds
    /// (`CommitRequestHashTests` compares both over random commits, odd characters included).
    var requestHash: [UInt8] {
        var json = CanonicalJSON()
        json.bytes.reserveCapacity(160 + basket.lines.count * 120)
        // Keys in JSONEncoder's sorted order.
        json.open()
        json.key("basket", first: true)
        json.open()
        json.key("currency", first: true)
        json.string(basket.currency)
        json.key("lines")
        json.bytes.append(UInt8(ascii: "["))
        for (index, line) in basket.lines.enumerated() {
            if index > 0 { json.bytes.append(UInt8(ascii: ",")) }
            json.open()
            json.key("category", first: true)
            json.string(line.category)
            json.key("discountMinor")
            json.integer(line.discountMinor)
            json.key("lineID")
            json.string(line.lineID)
            json.key("quantity")
            json.integer(line.quantity)
            json.key("sku")
            json.string(line.sku)
            json.key("unitPriceMinor")
            json.integer(line.unitPriceMinor)
            json.close()
        }
        json.bytes.append(UInt8(ascii: "]"))
        json.close()
        if let holdID {
            json.key("holdID")
            json.integer(holdID)
        }
        json.key("memberID")
        json.integer(memberID)
        json.key("posTransactionID")
        json.string(posTransactionID)
        json.key("purchasedAtMs")
        json.integer(purchasedAtMs)
        json.key("redeemPoints")
        json.integer(redeemPoints)
        json.key("terminalID")
        json.string(terminalID)
        json.close()
        return LoyaltyStore.requestHash("pos-commit", json: json.bytes)
    }
}

/// JSON as JSONEncoder writes it (no spaces; `"`, `\`, `/` and control characters escaped the way it escapes them).
/// The caller writes keys in sorted order.
struct CanonicalJSON {
    var bytes: [UInt8] = []

    mutating func open() { bytes.append(UInt8(ascii: "{")) }
    mutating func close() { bytes.append(UInt8(ascii: "}")) }

    mutating func key(_ name: StaticString, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    mutating func integer(_ value: Int64) {
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(byte)
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                bytes.append(contentsOf: "\\u00".utf8)
                bytes.append(contentsOf: HexDigits.lowercase([byte]).utf8)
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
