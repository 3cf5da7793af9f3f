import Foundation
import LoyaltyRules
import Testing

/// Broken copies of the shipped program: every class of bad input is refused with file, line and field.
@Suite("Rules loader: errors name file, line and field")
struct RulesLoaderErrorTests {
    /// Loads the shipped program with `replacements` and expects exactly one problem, at the line holding `at`.
    func single(_ replacements: [(String, String)], at needle: String, field: String, message: String) throws {
        let text = try RulesTestFiles.shippedWith(replacements)
        let issues = try RulesTestFiles.issues(["program.yaml": text])
        let line = try #require(RulesTestFiles.line(of: needle, in: text))
        #expect(issues.count == 1, "\(issues)")
        let issue = try #require(issues.first)
        #expect(issue.file == "program.yaml")
        #expect(issue.line == line)
        #expect(issue.field == field)
        #expect(issue.message.contains(message), "\(issue)")
    }

    @Test("negative multiplier: the message of docs/rules.md")
    func negativeMultiplier() throws {
        let text = try RulesTestFiles.shippedWith([("multiplier_bp: 20000", "multiplier_bp: -5")])
        let line = try #require(RulesTestFiles.line(of: "multiplier_bp: -5", in: text))
        #expect(try RulesTestFiles.issues(["program.yaml": text]).map(\.description) == [
            "program.yaml:\(line): earn.categories.own_brand.multiplier_bp: must be between 0 and 100000, got -5",
        ])
    }

    @Test("negative rate and rate above the limit")
    func rates() throws {
        try single([("default_rate_bp: 100", "default_rate_bp: -1")], at: "default_rate_bp",
                   field: "earn.default_rate_bp", message: "must be between 0 and 100000, got -1")
        try single([("gold: 150", "gold: 100001")], at: "gold: 100001",
                   field: "earn.tier_rates_bp.gold", message: "got 100001")
        try single([("max_share_of_basket_bp: 5000", "max_share_of_basket_bp: 10001")], at: "max_share",
                   field: "redemption.max_share_of_basket_bp", message: "between 0 and 10000")
    }

    @Test("an earning cap per basket is read, and one below 1 is refused")
    func earningCap() throws {
        let text = try RulesTestFiles.shippedWith([("  rounding: floor_per_line\n", "  rounding: floor_per_line\n  max_award_per_basket: 5000\n")])
        #expect(try RulesTestFiles.issues(["program.yaml": text]).isEmpty)
        try single([("  rounding: floor_per_line\n", "  rounding: floor_per_line\n  max_award_per_basket: 0\n")],
                   at: "max_award_per_basket", field: "earn.max_award_per_basket", message: "must be between 1 and 1000000000, got 0")
    }

    @Test("unknown keys are named, with the nearest known key")
    func unknownKeys() throws {
        try single([("      multiplier_bp: 30000", "      multiplyer_bp: 30000")], at: "multiplyer_bp",
                   field: "earn.skus.2000000000015.multiplyer_bp", message: "did you mean multiplier_bp?")
        try single([("redemption:", "redemtion:")], at: "redemtion:",
                   field: "redemtion", message: "unknown key redemtion; did you mean redemption?")
        try single([("  rounding: floor_per_line", "  rounding: floor_per_line\n  colour: red")], at: "colour",
                   field: "earn.colour", message: "known keys: unit, rounding")
    }

    @Test("wrong types")
    func wrongTypes() throws {
        try single([("minimum_points: 500", "minimum_points: \"500\"")], at: "minimum_points",
                   field: "redemption.minimum_points",
                   message: "must be a whole number, got text \"500\" (remove the quotes)")
        try single([("default_rate_bp: 100", "default_rate_bp: 1.5")], at: "default_rate_bp",
                   field: "earn.default_rate_bp", message: "got number 1.5")
        try single([("excluded_categories: [tobacco, gift_cards, lottery]", "excluded_categories: tobacco")],
                   at: "excluded_categories", field: "earn.excluded_categories", message: "must be a list")
        try single([("  unit: points", "  unit: pointz")], at: "unit: pointz", field: "earn.unit",
                   message: "must be one of points, cashback_minor, got pointz; did you mean points?")
        try single([("  categories:\n    own_brand:\n      multiplier_bp: 20000", "  categories: own_brand")],
                   at: "categories: own_brand", field: "earn.categories", message: "must be a mapping")
    }

    @Test("missing required fields point at the enclosing key")
    func missing() throws {
        try single([("  minimum_points: 500\n", "")], at: "redemption:", field: "redemption.minimum_points",
                   message: "missing required field")
        try single([("pending:\n  return_window_days: 14", "")], at: "# The loyalty", field: "pending",
                   message: "missing required section")
    }

    @Test("a category both multiplied and excluded")
    func multipliedAndExcluded() throws {
        try single([("excluded_categories: [tobacco, gift_cards, lottery]",
                     "excluded_categories: [tobacco, gift_cards, lottery, own_brand]")],
                   at: "  own_brand:", field: "earn.categories.own_brand", message: "also in earn.excluded_categories")
    }

    @Test("currency must be three upper-case letters")
    func currency() throws {
        try single([("currency: EUR", "currency: eur")], at: "currency", field: "program.currency",
                   message: "must be 3 upper-case letters")
        try single([("currency: EUR", "currency: EURO")], at: "currency", field: "program.currency",
                   message: "got \"EURO\"")
    }

    @Test("duplicate keys")
    func duplicates() throws {
        try single([("  minimum_points: 500", "  minimum_points: 500\n  minimum_points: 600")], at: "minimum_points: 600",
                   field: "redemption.minimum_points", message: "duplicate key minimum_points (first at line")
        try single([("[tobacco, gift_cards, lottery]\n\nredemption", "[tobacco, gift_cards, tobacco]\n\nredemption")],
                   at: "gift_cards, tobacco]", field: "earn.excluded_categories.tobacco", message: "listed twice")
    }

    @Test("tier problems: rate keys must be tier codes; review days in range")
    func tiers() throws {
        try single([("    gold: 150 ", "    Gold: 150 ")], at: "Gold", field: "earn.tier_rates_bp.Gold",
                   message: "lower_snake_case")
        try single([("review_every_days: 30", "review_every_days: 0")], at: "review_every_days: 0",
                   field: "tiers.review_every_days", message: "must be between 1 and 3650, got 0")
    }

    @Test("YAML syntax errors have a line")
    func syntax() throws {
        let text = try RulesTestFiles.shippedWith([("  currency: EUR", "  currency: [EUR")])
        let issues = try RulesTestFiles.issues(["program.yaml": text])
        #expect(issues.count == 1, "\(issues)")
        #expect(issues.first?.line != nil)
        #expect(issues.first?.message.hasPrefix("YAML syntax") == true)
        #expect(try RulesTestFiles.issues(["empty.yaml": ""]).first?.message.contains("empty") == true)
    }

    @Test("every problem of a file is reported, sorted by line")
    func collectsAll() throws {
        let text = try RulesTestFiles.shippedWith([
            ("currency: EUR", "currency: eur"),
            ("  unit: points", "  unit: pointz"),
            ("multiplier_bp: 20000", "multiplier_bp: -5"),
            ("  minimum_points: 500", "  minimum_pionts: 500"),
            ("days: 730", "days: forever"),
        ])
        let issues = try RulesTestFiles.issues(["program.yaml": text])
        #expect(issues.map(\.field) == [
            "program.currency", "earn.unit", "earn.categories.own_brand.multiplier_bp", "redemption.minimum_pionts",
            "expiry.days",
        ])
        #expect(issues.compactMap(\.line) == issues.compactMap(\.line).sorted())
    }

    @Test("at most 50 problems are listed, the rest counted")
    func bounded() throws {
        let junk = (1...60).map { "  junk\($0): 1" }.joined(separator: "\n")
        let text = try RulesTestFiles.shippedWith([("  currency: EUR", "  currency: EUR\n" + junk)])
        let url = try RulesTestFiles.folder(["program.yaml": text])
        defer { RulesTestFiles.remove(url) }
        #expect { try RulesLoader.load(directory: url) } throws: { error in
            guard case RulesError.invalid(let issues, let omitted) = error else { return false }
            return issues.count == RulesLoader.maxReportedIssues && omitted == 10
                && "\(error)".hasSuffix("… and 10 more problems")
        }
    }
}
