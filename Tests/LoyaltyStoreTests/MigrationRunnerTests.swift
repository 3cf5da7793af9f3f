import Foundation
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Migrations against a real PostgreSQL")
struct MigrationRunnerTests {
    let logger = TestServices.logger

    @Test("all migrations apply to an empty database; a second run is a no-op")
    func appliesThenNoOp() async throws {
        try await TestServices.withEmptyDatabase { _, client in
            let files = try MigrationFile.load(from: TestServices.migrationsDirectory)
            #expect(!files.isEmpty)
            let runner = MigrationRunner(client: client, logger: logger)
            let first = try await runner.migrate(files)
            #expect(first.applied == files.map(\.fileName))
            #expect(first.alreadyAppliedCount == 0)

            let second = try await runner.migrate(files)
            #expect(second.applied.isEmpty)
            #expect(second.alreadyAppliedCount == files.count)

            let applied = try await runner.appliedMigrations()
            #expect(applied.map(\.version) == files.map(\.version))
            #expect(applied.map(\.checksumHex) == files.map(\.checksumHex))
            // The schema is really there.
            let rows = try await client.query("SELECT count(*) FROM accounts WHERE member_id IS NULL")
            for try await count in rows.decode(Int.self) { #expect(count > 0) }
        }
    }

    @Test("an applied migration whose file changed is refused before anything runs")
    func tamperedRefused() async throws {
        try await TestServices.withEmptyDatabase { _, client in
            let runner = MigrationRunner(client: client, logger: logger)
            let original = [
                MigrationFile(version: 1, name: "first", sql: "CREATE TABLE a (id int)"),
            ]
            _ = try await runner.migrate(original)
            let tampered = [
                MigrationFile(version: 1, name: "first", sql: "CREATE TABLE a (id bigint)"),
                MigrationFile(version: 2, name: "second", sql: "CREATE TABLE b (id int)"),
            ]
            await #expect {
                try await runner.migrate(tampered)
            } throws: { error in
                guard case .migrationChecksumMismatch(let version, let name, _, _) = error as? StoreError else { return false }
                return version == 1 && name == "first"
            }
            // Nothing of the pending migration ran.
            #expect(try await tableExists("b", client) == false)
        }
    }

    @Test("an applied migration whose file is gone is refused")
    func missingFileRefused() async throws {
        try await TestServices.withEmptyDatabase { _, client in
            let runner = MigrationRunner(client: client, logger: logger)
            _ = try await runner.migrate([MigrationFile(version: 1, name: "first", sql: "SELECT 1")])
            await #expect(throws: StoreError.migrationMissingFile(version: 1, name: "first")) {
                try await runner.migrate([MigrationFile(version: 2, name: "second", sql: "SELECT 1")])
            }
        }
    }

    @Test("a failing migration is rolled back whole, named, and not recorded")
    func failingRolledBack() async throws {
        try await TestServices.withEmptyDatabase { _, client in
            let runner = MigrationRunner(client: client, logger: logger)
            let files = [
                MigrationFile(version: 1, name: "good", sql: "CREATE TABLE good (id int);"),
                MigrationFile(
                    version: 2, name: "bad",
                    sql: "CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\nINSERT INTO nowhere VALUES (1);"),
            ]
            await #expect {
                try await runner.migrate(files)
            } throws: { error in
                guard case .migrationFailed(let file, let index, let reason) = error as? StoreError else { return false }
                return file == "0002_bad.sql" && index == 2 && reason.contains("nowhere")
            }
            #expect(try await tableExists("good", client))
            #expect(try await tableExists("half", client) == false)
            let applied = try await runner.appliedMigrations()
            #expect(applied.map(\.version) == [1])
        }
    }

    @Test("two runners at once apply each migration exactly once")
    func concurrentRunners() async throws {
        try await TestServices.withEmptyDatabase { _, client in
            let files = [
                MigrationFile(version: 1, name: "one", sql: "CREATE TABLE one (id int)"),
                MigrationFile(version: 2, name: "two", sql: "CREATE TABLE two (id int)"),
            ]
            let runner = MigrationRunner(client: client, logger: logger)
            async let a = runner.migrate(files)
            async let b = runner.migrate(files)
            let (first, second) = try await (a, b)
            #expect(first.applied.count + second.applied.count == 2)
        }
    }

    @Test("file names must be NNNN_name.sql with unique versions")
    func fileNamesValidated() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "SELECT 1".write(to: directory.appendingPathComponent("0001_first.sql"), atomically: true, encoding: .utf8)
        #expect(try MigrationFile.load(from: directory).map(\.version) == [1])

        try "SELECT 1".write(to: directory.appendingPathComponent("0001_again.sql"), atomically: true, encoding: .utf8)
        #expect(throws: StoreError.self) { try MigrationFile.load(from: directory) }
        try FileManager.default.removeItem(at: directory.appendingPathComponent("0001_again.sql"))

        try "SELECT 1".write(to: directory.appendingPathComponent("2_short.sql"), atomically: true, encoding: .utf8)
        #expect(throws: StoreError.self) { try MigrationFile.load(from: directory) }
    }

    private func tableExists(_ name: String, _ client: PostgresClient) async throws -> Bool {
        let rows = try await client.query("SELECT to_regclass(\(name)) IS NOT NULL")
        for try await exists in rows.decode(Bool.self) { return exists }
        return false
    }
}
