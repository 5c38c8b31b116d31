import Foundation
@testable import JobTable
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import Outbox
import TestSupport

@Suite("Email addresses and headers")
struct EmailAddressTests {
    @Test(
        "one mailbox parses; its address and display name are kept",
        arguments: [
            ("a@example.com", "a@example.com", nil),
            ("  first.last+tag@sub.example.co.uk ", "first.last+tag@sub.example.co.uk", nil),
            ("Ada Lovelace <ada@example.com>", "ada@example.com", "Ada Lovelace"),
            ("\"Doe, Jane\" <jane@example.com>", "jane@example.com", "Doe, Jane"),
            ("Ünïcødé Nämé <u@example.com>", "u@example.com", "Ünïcødé Nämé"),
            ("<bare@example.com>", "bare@example.com", nil),
            ("ops@localhost", "ops@localhost", nil),
            ("o'brien!#$%&*=?^_`{|}~-@example.com", "o'brien!#$%&*=?^_`{|}~-@example.com", nil),
        ] as [(String, String, String?)])
    func valid(text: String, address: String, name: String?) throws {
        let parsed = try EmailAddress(parsing: text)
        #expect(parsed.address == address)
        #expect(parsed.displayName == name)
        // What is stored reads back as the same mailbox.
        #expect(try EmailAddress(parsing: parsed.description) == parsed)
    }

    @Test(
        "anything that is not one mailbox is refused, with the value escaped in the reason",
        arguments: [
            "victim@example.com>\r\nDATA\r\nFrom: ceo@example.com\r\n\r\nhi\r\n.\r\nMAIL FROM:<x@example.com>\r\nRCPT TO:<attacker@evil.com",
            "Victim <v@x>, attacker@evil.com",
            "a@example.com, b@example.com",
            "a@example.com; b@example.com",
            "Victim <v@example.com> <attacker@evil.com>",
            "v@example.com>",
            "Name, With Comma <n@example.com>",
            "",
            "   ",
            "no-at-sign",
            "two@@example.com",
            "a@b@example.com",
            "a@example",
            "a@-bad-.example.com",
            "a@exa_mple.com",
            ".dot@example.com",
            "do..t@example.com",
            "\"quoted local\"@example.com",
            "tab\there@example.com",
            "nul\u{0}@example.com",
            "bell\u{7}@example.com",
            "del\u{7F}@example.com",
            "ünï@example.com",
            "a@ünï.example.com",
            String(repeating: "l", count: 65) + "@example.com",
            "a@" + String(repeating: "d", count: 64) + ".com",
            "a@" + Array(repeating: String(repeating: "d", count: 60), count: 5).joined(separator: ".") + ".com",
            String(repeating: "x", count: 10_000),
        ])
    func invalid(text: String) {
        do {
            let parsed = try EmailAddress(parsing: text)
            Issue.record("\(displayEscaped(text)) parsed as \(parsed.address)")
        } catch {
            #expect(!error.value.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F })
            #expect(error.value.utf8.count <= 210)
            #expect(error.description.hasPrefix("invalid recipient"))
        }
    }

    @Test("a list of addresses parses each; one bad item fails the list")
    func list() throws {
        #expect(try EmailAddress.list(parsing: "").isEmpty)
        #expect(try EmailAddress.list(parsing: " a@example.com , b@example.com,").map(\.address) == [
            "a@example.com", "b@example.com",
        ])
        #expect(throws: EmailAddress.Invalid.self) { try EmailAddress.list(parsing: "a@example.com, bad") }
    }

    @Test("subjects and names from data never put a line break into a header")
    func headers() throws {
        let subject = "Approval\r\nBcc: attacker@evil.com\r\n\r\nbody — ✓ " + String(repeating: "é", count: 200)
        let email = Email(
            to: [try EmailAddress(parsing: "Ünï \"Q\" Smith <u@example.com>".replacingOccurrences(of: "\"Q\" ", with: ""))],
            cc: [try EmailAddress(parsing: "Plain Name <p@example.com>")], subject: subject, text: "t", html: "h")
        let message = String(decoding: email.mime(from: "Runner <runner@example.com>", messageID: "m@example.com"), as: UTF8.self)
        let head = message.components(separatedBy: "\r\n\r\n")[0]
        let lines = head.components(separatedBy: "\r\n")
        // Every line is a header or the folded continuation of one, within 78 characters
        // where it holds encoded words.
        for line in lines {
            #expect(line.first == " " || line.contains(":"), "stray header line: \(line)")
            #expect(!line.lowercased().hasPrefix("bcc:"))
            #expect(line.utf8.count <= 998)
        }
        #expect(lines.filter { $0.hasPrefix(" =?UTF-8?B?") || $0.hasPrefix("Subject: =?UTF-8?B?") }.allSatisfy {
            $0.utf8.count <= 78
        })
        #expect(headerValue("Subject", in: message) == subject.replacingOccurrences(of: "\r\n", with: "  "))
        #expect(headerValue("To", in: message) == "Ünï Smith <u@example.com>")
        #expect(headerValue("Cc", in: message) == "\"Plain Name\" <p@example.com>")
        #expect(headerValue("From", in: message) == "\"Runner\" <runner@example.com>")
        #expect(message.allSatisfy { $0.isASCII })
    }
}
