import Foundation
import JobTable
import RunnerSupport

/// An email with a plain-text and an HTML body.
public struct Email: Sendable, Equatable {
    public var to: [EmailAddress]
    public var cc: [EmailAddress]
    public var subject: String
    public var text: String
    public var html: String

    public init(to: [EmailAddress], cc: [EmailAddress] = [], subject: String, text: String, html: String) {
        self.to = to
        self.cc = cc
        self.subject = subject
        self.text = text
        self.html = html
    }

    /// Everyone it goes to, for the effect's `target`.
    public var recipients: String { (to + cc).map(\.address).joined(separator: ", ") }

    /// As stored in an effect's payload.
    public var json: JSONValue {
        [
            "to": .array(to.map { .string($0.description) }), "cc": .array(cc.map { .string($0.description) }),
            "subject": .string(subject), "text": .string(text), "html": .string(html),
        ]
    }

    /// `json` as text, written without building a dictionary (a large run stores 100,000).
    public var payloadText: String {
        JSONValue.objectText([
            ("cc", .array(cc.map { .string($0.description) })), ("html", .string(html)), ("subject", .string(subject)),
            ("text", .string(text)), ("to", .array(to.map { .string($0.description) })),
        ])
    }

    /// Reads a stored payload back; nil when it is not an email or an address no longer parses.
    public init?(json: JSONValue) {
        guard case .string(let subject)? = json["subject"], case .array(let to)? = json["to"] else { return nil }
        func addresses(_ value: JSONValue?) -> [EmailAddress]? {
            guard case .array(let items)? = value else { return [] }
            var addresses: [EmailAddress] = []
            for item in items {
                guard case .string(let text) = item, let address = try? EmailAddress(parsing: text) else { return nil }
                addresses.append(address)
            }
            return addresses
        }
        guard let recipients = addresses(.array(to)), !recipients.isEmpty, let copies = addresses(json["cc"]) else {
            return nil
        }
        self.init(
            to: recipients, cc: copies, subject: subject,
            text: { if case .string(let text)? = json["text"] { text } else { "" } }(),
            html: { if case .string(let html)? = json["html"] { html } else { "" } }())
    }

    /// The RFC 5322 message: multipart/alternative, UTF-8, quoted-printable free (base64 bodies).
    /// Every header value is written from a parsed ``EmailAddress`` or encoded by ``MIMEHeader``.
    package func mime(from: EmailAddress, messageID: String, date: Date = Date()) -> Data {
        let boundary = "runner-\(UUID().uuidString)"
        var lines = [
            "From: \(from.header)",
            "To: \(to.map(\.header).joined(separator: ",\r\n "))",
        ]
        if !cc.isEmpty { lines.append("Cc: \(cc.map(\.header).joined(separator: ",\r\n "))") }
        lines += [
            "Subject: \(MIMEHeader.unstructured(subject))",
            "Date: \(Self.rfc2822(date))",
            "Message-ID: <\(messageID)>",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative; boundary=\"\(boundary)\"",
            "",
            "--\(boundary)",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: base64",
            "",
            Self.base64Lines(text),
            "--\(boundary)",
            "Content-Type: text/html; charset=utf-8",
            "Content-Transfer-Encoding: base64",
            "",
            Self.base64Lines(html),
            "--\(boundary)--",
            "",
        ]
        return Data(lines.joined(separator: "\r\n").utf8)
    }

    package static func base64Lines(_ text: String) -> String {
        let encoded = Data(text.utf8).base64EncodedString()
        var lines: [Substring] = []
        var index = encoded.startIndex
        while index < encoded.endIndex {
            let end = encoded.index(index, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex
            lines.append(encoded[index..<end])
            index = end
        }
        return lines.joined(separator: "\r\n")
    }

    package static func rfc2822(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss +0000"
        return formatter.string(from: date)
    }
}

/// Escapes text for HTML; every value from a database goes through it. Works on bytes: the
/// five characters it escapes are ASCII, which never occur inside a multi-byte character, and
/// text with none of them (most of it) comes back as it is.
public func htmlEscape(_ text: String) -> String {
    var bytesOf = text
    return bytesOf.withUTF8 { bytes in
        guard bytes.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) else {
            return text
        }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + 16)
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "&"): output.append(contentsOf: "&amp;".utf8)
            case UInt8(ascii: "<"): output.append(contentsOf: "&lt;".utf8)
            case UInt8(ascii: ">"): output.append(contentsOf: "&gt;".utf8)
            case UInt8(ascii: "\""): output.append(contentsOf: "&quot;".utf8)
            case UInt8(ascii: "'"): output.append(contentsOf: "&#39;".utf8)
            default: output.append(byte)
            }
        }
        return String(decoding: output, as: UTF8.self)
    }
}
