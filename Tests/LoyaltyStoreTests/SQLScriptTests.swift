import LoyaltyStore
import Testing

@Suite("Splitting migration files into statements")
struct SQLScriptTests {
    @Test func splitsAtTopLevelSemicolons() throws {
        let statements = try SQLScript.split("CREATE TABLE a (id int);\n\nINSERT INTO a VALUES (1);\n")
        #expect(statements.map(\.text) == ["CREATE TABLE a (id int)", "INSERT INTO a VALUES (1)"])
        #expect(statements.map(\.line) == [1, 3])
    }

    @Test func keepsQuotedSemicolonsAndDoubledQuotes() throws {
        let statements = try SQLScript.split("INSERT INTO a VALUES ('x;y', 'it''s;'); SELECT \"we;ird\" FROM a")
        #expect(statements.count == 2)
        #expect(statements[0].text == "INSERT INTO a VALUES ('x;y', 'it''s;')")
        #expect(statements[1].text == "SELECT \"we;ird\" FROM a")
    }

    @Test func keepsDollarQuotedBodiesWhole() throws {
        let script = """
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$
            BEGIN
              PERFORM 1; RETURN $1;
            END;
            $body$;
            DO $$ BEGIN RAISE NOTICE 'a;b'; END $$;
            SELECT $1
            """
        let statements = try SQLScript.split(script)
        #expect(statements.count == 3)
        #expect(statements[0].text.hasSuffix("$body$"))
        #expect(statements[1].text == "DO $$ BEGIN RAISE NOTICE 'a;b'; END $$")
        #expect(statements[2].text == "SELECT $1")
    }

    @Test func dropsComments() throws {
        let statements = try SQLScript.split("-- a comment; with a semicolon\nSELECT 1; /* block; /* nested; */ */ SELECT 2;")
        #expect(statements.map(\.text) == ["SELECT 1", "SELECT 2"])
        #expect(try SQLScript.split("-- only a comment\n").isEmpty)
    }

    @Test func unterminatedIsAnError() {
        #expect(throws: SQLScript.SplitError.unterminated(what: "string", line: 2)) {
            try SQLScript.split("SELECT 1;\nSELECT 'open")
        }
        #expect(throws: SQLScript.SplitError.self) { try SQLScript.split("DO $$ BEGIN END") }
        #expect(throws: SQLScript.SplitError.self) { try SQLScript.split("/* open") }
    }
}

@Suite("Database URLs")
struct DatabaseURLTests {
    @Test func parsesAFullURL() throws {
        let url = try DatabaseURL("postgres://app:secret@db.local:6543/loyalty?sslmode=require")
        #expect(url.host == "db.local")
        #expect(url.port == 6543)
        #expect(url.username == "app")
        #expect(url.password == "secret")
        #expect(url.database == "loyalty")
        #expect(url.tlsMode == .require)
        #expect(!url.description.contains("secret"))
    }

    @Test func defaultsPortAndTLS() throws {
        let url = try DatabaseURL("postgresql://app@localhost/loyalty")
        #expect(url.port == 5432)
        #expect(url.tlsMode == .disable)
    }

    @Test(arguments: [
        "not a url", "mysql://a@b/c", "postgres:///db", "postgres://host/db", "postgres://a@host:99999/db",
        "postgres://a@host/", "postgres://a@host/db?sslmode=maybe", "postgres://a@host/db?color=blue",
    ])
    func refusesMalformed(_ text: String) {
        #expect(throws: StoreError.self) { try DatabaseURL(text) }
    }
}
