import Foundation
import RunnerSupport

/// One mailbox: an addr-spec (`local@domain`) and an optional display name, made only by a
/// parser that refuses what could smuggle a header, an SMTP command or a second recipient in.
/// It is the one way to name a recipient or a sender: every `To:`, `Cc:`, `From:`, `MAIL FROM`,
/// `RCPT TO` and provider address is written from one.
public struct EmailAddress: Sendable, Hashable, CustomStringConvertible {
    /// Why a value is not one mailbox; `value` is the input, escaped for display.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public let value: String
        public let reason: String
        public var description: String { "invalid recipient \"\(value)\": \(reason)" }
    }

    /// `local@domain`, ASCII, as given (case kept).
    public let address: String
    /// The display name, when the value had one (`Ada Lovelace <ada@example.com>`).
    public let displayName: String?

    public var domain: Substring { address[address.index(after: address.lastIndex(of: "@")!)...] }

    /// Parses `local@domain` or `Name <local@domain>` (the name may be double-quoted). Refuses
    /// control characters (CR, LF, NUL, …), lists (`,`, `;`), more than one `<…>`, quoted or
    /// non-ASCII local parts, a local part over 64 or an address over 254 bytes, and a domain
    /// without a dot (other than `localhost`).
    public init(parsing input: String) throws(Invalid) {
        func invalid(_ reason: String) -> Invalid { Invalid(value: displayEscaped(input), reason: reason) }
        guard input.utf8.count <= 1024 else { throw invalid("longer than 1024 bytes") }
        guard !input.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw invalid("contains a control character")
        }
        // The common case, a bare address of plain bytes, skips the display-name rules.
        if input.utf8.allSatisfy({ Self.atext[Int($0)] || $0 == UInt8(ascii: "@") || $0 == UInt8(ascii: ".") }) {
            try Self.checkSpec(Substring(input), invalid)
            address = input
            displayName = nil
            return
        }
        let text = input.trimmingCharacters(in: .whitespaces)
        var name: String?
        var spec = Substring(text)
        if let open = text.firstIndex(of: "<") {
            guard text.last == ">", text.lastIndex(of: "<") == open,
                text.firstIndex(of: ">") == text.index(before: text.endIndex)
            else { throw invalid("expected one address, as Name <local@domain>") }
            spec = text[text.index(after: open)..<text.index(before: text.endIndex)]
            var phrase = text[..<open].trimmingCharacters(in: .whitespaces)
            if phrase.count >= 2, phrase.first == "\"", phrase.last == "\"" {
                phrase = String(phrase.dropFirst().dropLast())
                guard !phrase.contains("\""), !phrase.contains("\\") else {
                    throw invalid("a quoted display name may not hold quotes or backslashes")
                }
            } else if phrase.contains(where: { ",;:\"@()[]\\".contains($0) }) {
                throw invalid("a display name with , ; : @ or quotes must be double-quoted (or it is a list)")
            }
            name = phrase.isEmpty ? nil : phrase
        } else if text.contains(">") {
            throw invalid("expected one address, as Name <local@domain>")
        }
        try Self.checkSpec(spec, invalid)
        address = String(spec)
        displayName = name
    }

    /// The bytes of RFC 5322 atext, and of a domain label, as tables by byte value.
    private static let atext = table(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
    private static let labelBytes = table("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")

    private static func table(_ allowed: String) -> [Bool] {
        var table = [Bool](repeating: false, count: 256)
        for byte in allowed.utf8 { table[Int(byte)] = true }
        return table
    }

    private static func hasDoubleDot(_ text: Substring) -> Bool {
        var previous: UInt8 = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "."), previous == byte { return true }
            previous = byte
        }
        return false
    }

    private static func checkSpec(_ spec: Substring, _ invalid: (String) -> Invalid) throws(Invalid) {
        guard spec.utf8.count <= 254 else { throw invalid("the address is longer than 254 bytes") }
        let parts = spec.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw invalid("expected exactly one @") }
        let (local, domain) = (parts[0], parts[1])
        guard !local.isEmpty, local.utf8.count <= 64 else { throw invalid("the part before @ must be 1 to 64 bytes") }
        guard local.utf8.allSatisfy({ atext[Int($0)] || $0 == UInt8(ascii: ".") }),
            local.first != ".", local.last != ".", !Self.hasDoubleDot(local)
        else { throw invalid("the part before @ may hold only letters, digits, single dots and !#$%&'*+-/=?^_`{|}~") }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard domain.utf8.count <= 253,
            labels.allSatisfy({ label in
                (1...63).contains(label.utf8.count) && label.utf8.allSatisfy({ labelBytes[Int($0)] })
                    && label.first != "-" && label.last != "-"
            })
        else { throw invalid("the domain must be dot-separated labels of letters, digits and hyphens") }
        guard labels.count >= 2 || domain.lowercased() == "localhost" else {
            throw invalid("the domain has no dot")
        }
    }

    /// A list of mailboxes separated by commas (a job table's `alert_to`); empty items are skipped.
    public static func list(parsing text: String) throws(Invalid) -> [EmailAddress] {
        var addresses: [EmailAddress] = []
        for item in text.split(separator: ",") where !item.trimmingCharacters(in: .whitespaces).isEmpty {
            addresses.append(try EmailAddress(parsing: String(item)))
        }
        return addresses
    }

    /// As a header's mailbox: `local@domain`, or the display name as an encoded phrase and `<local@domain>`.
    public var header: String {
        guard let displayName else { return address }
        return "\(MIMEHeader.phrase(displayName)) <\(address)>"
    }

    /// `Name <local@domain>` or `local@domain`, for storage and display (reads back through the parser).
    public var description: String {
        guard let displayName else { return address }
        return "\"\(displayName)\" <\(address)>"
    }

}

/// Header values built from data: encoded words, never raw text.
package enum MIMEHeader {
    /// An unstructured header value (a subject): as it is when it is printable ASCII without
    /// control characters, else RFC 2047 encoded words (UTF-8, base64), folded onto lines of
    /// their own so no line exceeds 78 characters. Control characters become spaces first.
    package static func unstructured(_ text: String) -> String {
        let clean = singleLine(text)
        if clean.utf8.count <= 900, clean.utf8.allSatisfy({ (0x20..<0x7F).contains($0) }) { return clean }
        return encodedWords(clean)
    }

    /// One line of text for a JSON API's subject: control characters become spaces.
    package static func singleLine(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : $0 }))
    }

    /// A display name: a quoted string when it is plain ASCII letters, digits, spaces and
    /// `.-'`, else encoded words.
    package static func phrase(_ text: String) -> String {
        let plain = text.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || " .-'".utf8.contains(byte)
        }
        return plain ? "\"\(text)\"" : encodedWords(text)
    }

    /// `=?UTF-8?B?…?=` words of at most 39 bytes of text each (52 of base64), never splitting a
    /// UTF-8 sequence, joined by folding whitespace.
    package static func encodedWords(_ text: String) -> String {
        var words: [String] = []
        var chunk: [UInt8] = []
        // By scalar: a word must hold whole UTF-8 sequences, and a scalar is at most 4 bytes
        // (a grapheme cluster may be longer than a word).
        for scalar in text.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > 39, !chunk.isEmpty {
                words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=") }
        return words.joined(separator: "\r\n ")
    }
}
