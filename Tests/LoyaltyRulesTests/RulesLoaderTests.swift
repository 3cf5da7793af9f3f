import Foundation
import LoyaltyCore
import LoyaltyRules
import Testing

@Suite("Rules loader: the shipped program, versions and several files")
struct RulesLoaderTests {
    @Test("the shipped rules/ loads with the documented values")
    func shipped() throws {
        let loaded = try RulesLoader.load(directory: RulesTestFiles.shippedDirectory)
        let rules = loaded.ruleSet
        #expect(loaded.files == ["program.yaml"])
        #expect(rules.currency == "EUR")
        #expect(rules.earn.unit == .points)
        #expect(rules.earn.rounding == .floorPerLine)
        #expect(rules.earn.minimumBasketMinor == 100)
        #expect(rules.earn.tierRatesBp == ["base": 100, "silver": 125, "gold": 150])
        #expect(rules.earn.categoryMultipliersBp == ["own_brand": 20_000])
        #expect(rules.earn.skuMultipliersBp == ["2000000000015": 30_000])
        #expect(rules.earn.excludedCategories == ["tobacco", "gift_cards", "lottery"])
        #expect(rules.redemption == RedemptionRules(pointValueMinor: 1, minimumPoints: 500, maxShareOfBasketBp: 5_000,
                                                    nonRedeemableCategories: ["tobacco", "gift_cards", "lottery"]))
        #expect(rules.returnWindowDays == 14)
        #expect(rules.expiryDays == 730)
        #expect(rules.tierReview == TierReview(reviewEveryDays: 30, graceDays: 30))
        #expect(loaded.version.count == 16 && loaded.version.allSatisfy(\.isHexDigit))
    }

    @Test("the worked example of docs/rules.md")
    func workedExample() throws {
        let loaded = try RulesLoader.load(directory: RulesTestFiles.shippedDirectory)
        let basket = Basket(currency: "EUR", lines: [
            BasketLine(lineID: "1", sku: "4001234567890", category: "dairy", quantity: 3, unitPriceMinor: 129),
            BasketLine(lineID: "2", sku: "2000000000020", category: "own_brand", quantity: 2, unitPriceMinor: 249,
                       discountMinor: 50),
            BasketLine(lineID: "3", sku: "2000000000015", category: "own_brand", quantity: 1, unitPriceMinor: 899),
            BasketLine(lineID: "4", sku: "9000000000001", category: "tobacco", quantity: 1, unitPriceMinor: 850),
        ])
        let quote = try loaded.evaluator.quote(basket: basket, tierCode: "silver", campaigns: [], memberSegments: [],
                                               now: Date(timeIntervalSince1970: 0), availableBalance: 2_000)
        #expect(quote.lines.map(\.paidMinor) == [387, 448, 899, 850])
        #expect(quote.lines.map(\.award) == [4, 11, 33, 0])
        #expect(quote.totalAward == 48)
        #expect(quote.maxRedeemablePoints == 867)
        #expect(quote.rulesVersion == loaded.version)

        var earn = loaded.ruleSet.earn
        earn.rounding = .floorPerBasket
        let rules = loaded.ruleSet
        let perBasket = try RuleSet(name: rules.name, currency: rules.currency, earn: earn, redemption: rules.redemption,
                                    returnWindowDays: rules.returnWindowDays, expiryDays: rules.expiryDays,
                                    tierReview: rules.tierReview)
        let byBasket = try RulesEvaluator(ruleSet: perBasket).quote(
            basket: basket, tierCode: "silver", campaigns: [], memberSegments: [], now: Date(timeIntervalSince1970: 0),
            availableBalance: 2_000)
        #expect(byBasket.lines.map(\.award) == [5, 11, 33, 0])

        let now = Date(timeIntervalSince1970: 1_750_000_000)
        let dairyWeek = try CampaignMultiplier(campaignID: 42, name: "Dairy week", startsAt: now - 86_400,
                                               endsAt: now + 86_400, effect: .multiplier(bp: 20_000),
                                               categories: ["dairy"])
        let withCampaign = try loaded.evaluator.quote(basket: basket, tierCode: "silver", campaigns: [dairyWeek],
                                                      memberSegments: [], now: now, availableBalance: 2_000)
        #expect(withCampaign.lines[0].award == 9)
        #expect(withCampaign.totalAward == 53)
    }

    @Test("the version is SHA-256 over name, 0, bytes; any byte or a rename changes it")
    func version() throws {
        let text = try RulesTestFiles.shippedText()
        let a = try RulesTestFiles.folder(["program.yaml": text])
        let b = try RulesTestFiles.folder(["program.yaml": text.replacingOccurrences(of: "days: 730", with: "days: 731")])
        let c = try RulesTestFiles.folder(["rules.yaml": text])
        defer { [a, b, c].forEach(RulesTestFiles.remove) }
        let va = try RulesLoader.load(directory: a).version
        #expect(va == (try RulesLoader.load(directory: RulesTestFiles.shippedDirectory).version))
        #expect(va != (try RulesLoader.load(directory: b).version))
        #expect(va != (try RulesLoader.load(directory: c).version))
        #expect(va == RulesLoader.version(of: [("program.yaml", Data(text.utf8))]))
    }

    @Test("one program may be split over several files, read in name order")
    func splitFiles() throws {
        let text = try RulesTestFiles.shippedText()
        let cut = try #require(text.range(of: "\ntiers:"))
        let url = try RulesTestFiles.folder(["a.yaml": String(text[..<cut.lowerBound]) + "\n",
                                             "b.yml": "tiers:" + String(text[cut.upperBound...]),
                                             "notes.txt": "ignored"])
        defer { RulesTestFiles.remove(url) }
        let loaded = try RulesLoader.load(directory: url)
        #expect(loaded.files == ["a.yaml", "b.yml"])
        #expect(loaded.ruleSet == (try RulesLoader.load(directory: RulesTestFiles.shippedDirectory).ruleSet))
    }

    @Test("a section written in two files is refused, naming both")
    func sectionTwice() throws {
        let text = try RulesTestFiles.shippedText()
        let issues = try RulesTestFiles.issues(["a.yaml": text, "b.yaml": "expiry:\n  days: 365\n"])
        let first = try #require(RulesTestFiles.line(of: "expiry:", in: text))
        #expect(issues.map(\.description) == ["b.yaml:1: expiry: section expiry is already defined at a.yaml:\(first)"])
    }

    @Test("folder problems")
    func folders() throws {
        let empty = try RulesTestFiles.folder(["readme.txt": "x"])
        defer { RulesTestFiles.remove(empty) }
        #expect(throws: RulesError.noRulesFiles(path: empty.path)) { try RulesLoader.load(directory: empty) }
        let missing = empty.appendingPathComponent("nope")
        #expect { try RulesLoader.load(directory: missing) } throws: { error in
            if case RulesError.directoryUnreadable(let path, _) = error { path == missing.path } else { false }
        }
    }
}
