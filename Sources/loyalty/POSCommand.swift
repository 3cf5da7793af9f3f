import ArgumentParser
import Foundation
import POSProtocol
import SwiftProtobuf

/// A POS client on the command line, for support staff and scripts: it speaks the same protocol as a till and
/// prints each answer as JSON (protobuf JSON mapping). Exit code 0 on OK, 2 on a non-OK status, 1 on other errors.
struct POSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pos", abstract: "Talk to a running server as a POS terminal (lookup, quote, hold, commit, cancel, refund).",
        discussion: """
            The terminal must be registered (`loyalty terminal register`); pass its id and secret, or set
            LOYALTY_TERMINAL_ID and LOYALTY_TERMINAL_SECRET. Basket lines are LINE_ID,SKU,CATEGORY,QUANTITY,UNIT_PRICE_MINOR[,DISCOUNT_MINOR].
            Example: loyalty pos commit --txn T-1 --member 42 --line 1,4006381333931,grocery,2,199
            """,
        subcommands: [Ping.self, Lookup.self, Quote.self, Hold.self, Commit.self, Cancel.self, Refund.self])

    struct Connection: ParsableArguments {
        @Option(help: "Server host.") var host = "127.0.0.1"
        @Option(help: "POS port (env LOYALTY_POS_PORT).") var port: Int?
        @Option(name: .customLong("terminal"), help: "Terminal id (env LOYALTY_TERMINAL_ID).") var terminalID: String?
        @Option(name: .customLong("secret"), help: "Terminal secret as printed at registration, base64 (env LOYALTY_TERMINAL_SECRET).")
        var secret: String?
        @Option(name: .customLong("deadline-ms"), help: "Deadline sent with the request.") var deadlineMs: UInt32 = 5_000
        @OptionGroup(title: "TLS (a server started with --pos-tls-cert)") var tls: POSClientTLSOptions

        /// Connects and authenticates, then runs `body`; closes the connection either way.
        func withClient<T>(_ body: (POSClient) async throws -> T) async throws -> T {
            let port = try self.port ?? environment("LOYALTY_POS_PORT").flatMap(Int.init) ?? 7070
            guard let terminalID = terminalID ?? environment("LOYALTY_TERMINAL_ID") else {
                throw CommandFailure("no terminal: pass --terminal or set LOYALTY_TERMINAL_ID")
            }
            guard let secretText = secret ?? environment("LOYALTY_TERMINAL_SECRET"), let secret = Data(base64Encoded: secretText)
            else {
                throw CommandFailure("no terminal secret: pass --secret (base64, as printed by `loyalty terminal register`) or set LOYALTY_TERMINAL_SECRET")
            }
            let tls = try self.tls.resolved()
            let client: POSClient
            do {
                client = try await POSClient.connect(host: host, port: port, tls: tls)
            } catch let error as POSClientError {
                throw CommandFailure("cannot connect to the POS port \(host):\(port): \(error)")
            } catch {
                throw CommandFailure("cannot connect to the POS port \(host):\(port) (\(error)); is `loyalty serve` running?")
            }
            do {
                try await client.hello(terminalID: terminalID, secret: Array(secret))
                let result = try await body(client)
                await client.close()
                return result
            } catch {
                await client.close()
                throw error
            }
        }

        /// Sends one request and prints the answer; a non-OK status prints the error detail and exits 2.
        func send(_ method: Loyalty_Pos_V1_Method, _ request: some SwiftProtobuf.Message, answer: (some SwiftProtobuf.Message).Type) async throws {
            try await withClient { client in
                let response = try await client.call(method, request, deadlineMs: deadlineMs)
                guard response.status == .ok else {
                    let detail = try? Loyalty_Pos_V1_ErrorDetail(serializedBytes: Array(buffer: response.payload))
                    FileHandle.standardError.write(Data(
                        "error: \(response.status) \(detail?.code ?? "") \(detail?.message ?? "")\(response.status.isRetryable ? " (retryable: send the same request again)" : "")\n".utf8))
                    throw ExitCode(2)
                }
                let message = try response.decode(answer)
                var options = JSONEncodingOptions()
                options.alwaysPrintInt64sAsNumbers = true
                options.preserveProtoFieldNames = true
                print(try message.jsonString(options: options))
            }
        }
    }

    /// Basket options shared by quote and commit.
    struct BasketOptions: ParsableArguments {
        @Option(help: "Currency of the basket.") var currency = "EUR"
        @Option(name: .customLong("line"), help: "A basket line: LINE_ID,SKU,CATEGORY,QUANTITY,UNIT_PRICE_MINOR[,DISCOUNT_MINOR]. Repeat per line.")
        var lines: [String] = []
        @Option(name: .customLong("basket"), help: "A basket as protobuf JSON (file path), instead of --line.") var basketFile: String?

        func basket() throws -> Loyalty_Pos_V1_Basket {
            if let basketFile {
                guard let data = FileManager.default.contents(atPath: basketFile) else {
                    throw CommandFailure("cannot read the basket file \(basketFile)")
                }
                do { return try Loyalty_Pos_V1_Basket(jsonUTF8Data: data) } catch {
                    throw CommandFailure("\(basketFile) is not a basket in protobuf JSON: \(error)")
                }
            }
            guard !lines.isEmpty else { throw CommandFailure("give at least one --line (or --basket FILE)") }
            var basket = Loyalty_Pos_V1_Basket()
            basket.currency = currency
            for (index, text) in lines.enumerated() {
                let fields = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                guard (5...6).contains(fields.count), let quantity = Int64(fields[3]), let price = Int64(fields[4]),
                      fields.count == 5 || Int64(fields[5]) != nil
                else {
                    throw CommandFailure("--line \(index + 1) '\(text)': expected LINE_ID,SKU,CATEGORY,QUANTITY,UNIT_PRICE_MINOR[,DISCOUNT_MINOR] with whole numbers")
                }
                var line = Loyalty_Pos_V1_BasketLine()
                line.lineID = fields[0]
                line.sku = fields[1]
                line.category = fields[2]
                line.quantity = quantity
                line.unitPriceMinor = price
                line.discountMinor = fields.count == 6 ? Int64(fields[5])! : 0
                basket.lines.append(line)
            }
            return basket
        }
    }

    struct Ping: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Authenticate and ping: checks the terminal's credentials and the round trip.")
        @OptionGroup var connection: Connection

        func run() async throws {
            try await failingCleanly {
                try await connection.withClient { client in
                    let started = ContinuousClock.now
                    try await client.ping()
                    print("pong in \(ContinuousClock.now - started)")
                }
            }
        }
    }

    struct Lookup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Look a member up by card, phone or id.")
        @OptionGroup var connection: Connection
        @Option var card: String?
        @Option var phone: String?
        @Option(name: .customLong("member")) var memberID: Int64?

        func run() async throws {
            try await failingCleanly {
                var request = Loyalty_Pos_V1_LookupRequest()
                switch (card, phone, memberID) {
                case (let card?, nil, nil): request.cardNumber = card
                case (nil, let phone?, nil): request.phone = phone
                case (nil, nil, let id?): request.memberID = id
                default: throw CommandFailure("give exactly one of --card, --phone, --member")
                }
                try await connection.send(.lookup, request, answer: Loyalty_Pos_V1_MemberSummary.self)
            }
        }
    }

    struct Quote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Price a basket for a member; writes nothing.")
        @OptionGroup var connection: Connection
        @OptionGroup var basket: BasketOptions
        @Option(name: .customLong("member")) var memberID: Int64

        func run() async throws {
            try await failingCleanly {
                var request = Loyalty_Pos_V1_QuoteRequest()
                request.memberID = memberID
                request.basket = try basket.basket()
                try await connection.send(.quote, request, answer: Loyalty_Pos_V1_QuoteResponse.self)
            }
        }
    }

    struct Hold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reserve points during a checkout.")
        @OptionGroup var connection: Connection
        @Option(name: .customLong("txn"), help: "POS transaction id (idempotency key on this terminal).") var transactionID: String
        @Option(name: .customLong("member")) var memberID: Int64
        @Option var points: Int64
        @Option(name: .customLong("seconds"), help: "Hold duration; 0 = server default.") var seconds: UInt32 = 0

        func run() async throws {
            try await failingCleanly {
                var request = Loyalty_Pos_V1_HoldRequest()
                request.posTransactionID = transactionID
                request.memberID = memberID
                request.points = points
                request.holdSeconds = seconds
                try await connection.send(.hold, request, answer: Loyalty_Pos_V1_HoldResponse.self)
            }
        }
    }

    struct Commit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Book a purchase: redeem (optionally from a hold) and award, once per transaction id.",
            discussion: "Sending the same command again returns the first result (replayed: true); nothing is booked twice.")
        @OptionGroup var connection: Connection
        @OptionGroup var basket: BasketOptions
        @Option(name: .customLong("txn"), help: "POS transaction id (idempotency key on this terminal).") var transactionID: String
        @Option(name: .customLong("member")) var memberID: Int64
        @Option(name: .customLong("redeem"), help: "Points to pay with.") var redeemPoints: Int64 = 0
        @Option(name: .customLong("hold"), help: "Hold id to redeem from.") var holdID: Int64 = 0
        @Option(name: .customLong("purchased-at-ms"), help: "Original purchase time (Unix ms) for an offline sale; 0 = now.")
        var purchasedAtMs: Int64 = 0

        func run() async throws {
            try await failingCleanly {
                var request = Loyalty_Pos_V1_CommitRequest()
                request.posTransactionID = transactionID
                request.memberID = memberID
                request.basket = try basket.basket()
                request.redeemPoints = redeemPoints
                request.holdID = holdID
                request.purchasedAtMs = purchasedAtMs
                try await connection.send(.commit, request, answer: Loyalty_Pos_V1_CommitResponse.self)
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Void a purchase committed on this terminal, or release its hold.")
        @OptionGroup var connection: Connection
        @Option(name: .customLong("txn")) var transactionID: String

        func run() async throws {
            try await failingCleanly {
                var request = Loyalty_Pos_V1_CancelRequest()
                request.posTransactionID = transactionID
                try await connection.send(.cancel, request, answer: Loyalty_Pos_V1_CancelResponse.self)
            }
        }
    }

    struct Refund: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Return lines of a purchase: takes back their points, pays back redeemed points.")
        @OptionGroup var connection: Connection
        @Option(name: .customLong("refund-id"), help: "Idempotency key of this refund on this terminal.") var refundID: String
        @Option(name: .customLong("of"), help: "The purchase's POS transaction id.") var original: String
        @Option(name: .customLong("sold-by"), help: "Terminal that sold it; default this one.") var originalTerminal: String?
        @Option(name: .customLong("line"), help: "LINE_ID,QUANTITY returned. Repeat per line.") var lines: [String] = []

        func run() async throws {
            try await failingCleanly {
                var request = Loyalty_Pos_V1_RefundRequest()
                request.refundID = refundID
                request.originalPosTransactionID = original
                request.originalTerminalID = originalTerminal ?? ""
                guard !lines.isEmpty else { throw CommandFailure("give at least one --line LINE_ID,QUANTITY") }
                for text in lines {
                    let fields = text.split(separator: ",").map(String.init)
                    guard fields.count == 2, let quantity = Int64(fields[1]) else {
                        throw CommandFailure("--line '\(text)': expected LINE_ID,QUANTITY")
                    }
                    var line = Loyalty_Pos_V1_RefundLine()
                    line.lineID = fields[0]
                    line.quantity = quantity
                    request.lines.append(line)
                }
                try await connection.send(.refund, request, answer: Loyalty_Pos_V1_RefundResponse.self)
            }
        }
    }
}
