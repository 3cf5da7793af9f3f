import LoyaltyCore
import Testing

@Suite("Rules: basket validation")
struct RulesBasketTests {
    func check(_ lines: [BasketLine], currency: String = "EUR") throws(BasketError) {
        try Basket(currency: currency, lines: lines).validate(currency: "EUR")
    }

    let ok = RulesFixture.line("1", quantity: 2, price: 500, discount: 1_000)

    @Test("a valid basket passes, up to the line limit")
    func valid() throws {
        try check([ok])
        try check((0..<RuleLimits.maxBasketLines).map { RulesFixture.line("l\($0)", price: 1) })
    }

    @Test("each problem has its own error")
    func errors() {
        #expect(throws: BasketError.noLines) { try check([]) }
        #expect(throws: BasketError.tooManyLines(count: 501)) {
            try check((0...RuleLimits.maxBasketLines).map { RulesFixture.line("l\($0)", price: 1) })
        }
        #expect(throws: BasketError.currencyMismatch(basket: "USD", program: "EUR")) { try check([ok], currency: "USD") }
        #expect(throws: BasketError.duplicateLineID("1")) { try check([ok, ok]) }
        #expect(throws: BasketError.invalidLineID(index: 0, lineID: "")) { try check([RulesFixture.line("", price: 1)]) }
        #expect(throws: BasketError.invalidCode(lineID: "1", field: "sku")) {
            try check([RulesFixture.line("1", sku: "has space", price: 1)])
        }
        #expect(throws: BasketError.invalidCode(lineID: "1", field: "category")) {
            try check([RulesFixture.line("1", category: "", price: 1)])
        }
        #expect(throws: BasketError.quantityOutOfRange(lineID: "1", quantity: 0)) {
            try check([RulesFixture.line("1", quantity: 0, price: 1)])
        }
        #expect(throws: BasketError.quantityOutOfRange(lineID: "1", quantity: 10_001)) {
            try check([RulesFixture.line("1", quantity: 10_001, price: 1)])
        }
        #expect(throws: BasketError.negativeUnitPrice(lineID: "1", unitPriceMinor: -1)) {
            try check([RulesFixture.line("1", price: -1)])
        }
        #expect(throws: BasketError.discountOutOfRange(lineID: "1", discountMinor: 1_001, maxMinor: 1_000)) {
            try check([RulesFixture.line("1", quantity: 2, price: 500, discount: 1_001)])
        }
        #expect(throws: BasketError.discountOutOfRange(lineID: "1", discountMinor: -1, maxMinor: 1_000)) {
            try check([RulesFixture.line("1", quantity: 2, price: 500, discount: -1)])
        }
        #expect(throws: BasketError.lineOverflow(lineID: "1")) {
            try check([RulesFixture.line("1", quantity: 10_000, price: Int64.max / 1_000)])
        }
        #expect(throws: BasketError.basketOverflow) {
            try check([RulesFixture.line("1", price: Int64.max), RulesFixture.line("2", price: 1)])
        }
    }

    @Test("messages name the line and say what to send")
    func messages() {
        #expect(BasketError.quantityOutOfRange(lineID: "A7", quantity: 0).description
            == "line A7: quantity must be between 1 and 10000, got 0")
        #expect(BasketError.tooManyLines(count: 501).description.contains("limit of 500"))
        #expect(BasketError.currencyMismatch(basket: "USD", program: "EUR").description.contains("send the basket in EUR"))
    }

    @Test("the evaluator refuses an invalid basket")
    func evaluatorValidates() {
        #expect(throws: QuoteError.basket(.noLines)) { try RulesFixture.quote([]) }
    }
}
