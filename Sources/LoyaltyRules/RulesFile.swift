import LoyaltyCore
import Yams

/// Placeholder until the rules loader lands.
enum RulesFilePlaceholder {}
