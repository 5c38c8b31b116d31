import ArgumentParser
import Foundation
import Ledger
import Outbox
import Engine
import RunnerSupport

extension Effects.Status: ExpressibleByArgument {}

struct Outbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "The emails the agents recorded: list them, or queue one again.",
        subcommands: [List.self, Show.self, Resend.self], defaultSubcommand: List.self)
}

extension Outbox {
    /// Queues an email whose outcome is unknown (or that failed) to be sent again by its job's next run.
    struct Resend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "resend",
            abstract: "Queue an unknown or failed email again; its job's next run sends it.",
            discussion:
                "Check first that it did not arrive (an unknown outcome may have been delivered). The ledger keeps who asked and when."
        )

        @Argument(help: "The email's ID, as runner outbox lists it.")
        var id: Int64

        /// The table's `namespace:` says whose emails these are (default without a table).
        @OptionGroup var config: ConfigOptions
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let connection = try await database.connect()
            guard
                let effect = try await Effects(connection: connection, namespace: try config.namespace()).requeue(
                    id, kind: EmailDelivery.kind.name, by: operatorIdentity())
            else {
                throw CommandError(
                    "email \(id) is not in the outbox as unknown or failed (runner outbox --status unknown lists them)")
            }
            print(
                "email \(effect.id) to \(effect.target ?? "(no recipient)") is queued again; the next run of its job sends it"
            )
        }
    }
}

extension Outbox {
    /// `runner outbox show ID`: one email as its recipient would read it.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Print one email: its headers and status, then its text (or, with --html, its HTML).")

        @Argument(help: "The email's ID, as runner outbox lists it.")
        var id: Int64

        @Flag(help: "Print the HTML body instead of the text.")
        var html = false

        /// The table's `namespace:` says whose emails these are (default without a table).
        @OptionGroup var config: ConfigOptions
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let connection = try await database.connect()
            guard let effect = try await Effects(connection: connection, namespace: try config.namespace()).effect(id: id, kind: EmailDelivery.kind.name) else {
                throw CommandError(
                    "there is no email \(id) in the outbox\nhint: runner outbox lists them with their IDs")
            }
            let headers: [(String, String)] = [
                ("To", Self.addresses(effect.payload["to"]) ?? "(no recipient: kept as a draft)"),
                ("Cc", Self.addresses(effect.payload["cc"]) ?? ""),
                ("Subject", effect.payload["subject"]?.stringValue ?? ""),
                ("Status", effect.status.rawValue + (effect.lastError.map { " (\($0))" } ?? "")),
                ("Created", utc(effect.createdAt)),
            ]
            for (name, value) in headers where !value.isEmpty { print("\(name): \(value)") }
            print("")
            print(effect.payload[html ? "html" : "text"]?.stringValue ?? "")
        }

        /// A stored address list as one line; nil when it is empty.
        static func addresses(_ value: JSONValue?) -> String? {
            guard case .array(let items)? = value else { return nil }
            let list = items.compactMap(\.stringValue)
            return list.isEmpty ? nil : list.joined(separator: ", ")
        }
    }
}

extension Outbox {
    /// `runner outbox [list]`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract:
                "List the emails the agents recorded: sent, drafts, pending retries, failures and unknown outcomes.",
            discussion:
                "Drafts are emails kept because no EMAIL_PROVIDER is configured (or no recipient); nothing is lost."
        )

        @Option(help: "Only emails with this status (pending, sent, draft, failed, unknown).")
        var status: Effects.Status?

        @Option(help: "At most this many emails.")
        var limit: Int = 50

        @Flag(help: "Print a JSON array instead of a table.")
        var json = false

        /// The table's `namespace:` says whose emails these are (default without a table).
        @OptionGroup var config: ConfigOptions
        @OptionGroup var database: DatabaseOptions

        func validate() throws {
            try validateLimit(limit)
        }

        func run() async throws {
            let connection = try await database.connect()
            let emails = try await Effects(connection: connection, namespace: try config.namespace()).list(
                kind: EmailDelivery.kind.name, status: status, limit: limit)
            if json {
                print(
                    JSONValue.array(
                        emails.map { effect in
                            [
                                "id": .number(Double(effect.id)), "key": .string(effect.key),
                                "status": .string(effect.status.rawValue),
                                "to": .string(effect.target ?? ""), "subject": effect.payload["subject"] ?? .null,
                                "cc": effect.payload["cc"] ?? .array([]), "text": effect.payload["text"] ?? .null,
                                "html": effect.payload["html"] ?? .null,
                                "attempts": .number(Double(effect.attempts)),
                                "error": effect.lastError.map(JSONValue.string) ?? .null,
                                "created_at": .string(utc(effect.createdAt)),
                            ]
                        }
                    ).text)
                return
            }
            guard !emails.isEmpty else {
                print("the outbox is empty\(status.map { " (status \($0.rawValue))" } ?? "")")
                return
            }
            let rows = emails.map { effect -> [String] in
                var subject = "-"
                if case .string(let text)? = effect.payload["subject"] { subject = text }
                return [
                    String(effect.id), effect.status.rawValue, utc(effect.createdAt),
                    effect.target.flatMap { $0.isEmpty ? nil : $0 } ?? "(no recipient)", subject,
                    effect.lastError.map { String($0.prefix(60)) } ?? "",
                ]
            }
            print(alignedTable(header: ["ID", "STATUS", "CREATED", "TO", "SUBJECT", "ERROR"], rows: rows))
        }
    }
}
