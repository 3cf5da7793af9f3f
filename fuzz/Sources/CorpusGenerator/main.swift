import Foundation
import FuzzHarness

// Writes the seed corpus: `CorpusGenerator <corpus directory>` (fuzz/corpus). Deterministic, so a rerun only
// shows a diff when the seeds or the wire format changed.
let corpusURL = URL(fileURLWithPath: CommandLine.arguments.dropFirst().first ?? "corpus")

func write(_ seeds: [(name: String, bytes: [UInt8])], target: String) throws {
    let directory = corpusURL.appendingPathComponent(target)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    for seed in seeds {
        try Data(seed.bytes).write(to: directory.appendingPathComponent(seed.name + ".bin"))
    }
    print("\(target): \(seeds.count) seeds in \(directory.path)")
}

try write(FrameSeeds.all(), target: "FrameDecoderFuzzer")
try write(PayloadSeeds.requests().map { ($0.name, [UInt8($0.method.rawValue)] + $0.payload) }, target: "PayloadFuzzer")
