import ArgumentParser

@main
struct LoadTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loyalty-loadtest", abstract: "Load generator for the POS protocol (scenarios in loadtests/).")

    func run() async throws {
        print("no scenarios yet")
    }
}
