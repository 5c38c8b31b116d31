import Foundation

/// The one sanitiser between text from outside and a terminal: command output, product rows,
/// YAML, another operator's words. Control characters (C0 but newline and tab, DEL, C1) and the
/// bidirectional overrides are shown as escapes (`\x1b`, `\r`, `\u009b`, `\u202e`), so no escape
/// sequence (a screen clear, an OSC 52 clipboard write, a carriage return that overwrites a line)
/// reaches the terminal as a command. JSON output is already escaped and passes unchanged.
public enum TerminalText {
    /// `text` safe to print; `keepingNewlines: false` also shows `\n` and `\t` as escapes (one
    /// line: a log line's value, a table cell).
    public static func safe(_ text: String, keepingNewlines: Bool = true) -> String {
        guard text.unicodeScalars.contains(where: { needsEscape($0, keepingNewlines: keepingNewlines) }) else {
            return text
        }
        var output = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar, keepingNewlines: keepingNewlines) else {
                output.append(scalar)
                continue
            }
            let visible: String
            switch scalar {
            case "\r": visible = "\\r"
            case "\n": visible = "\\n"
            case "\t": visible = "\\t"
            default:
                visible =
                    scalar.value < 0x80
                    ? "\\x" + hex(scalar.value, width: 2) : "\\u" + hex(scalar.value, width: 4)
            }
            output.append(contentsOf: visible.unicodeScalars)
        }
        return String(output)
    }

    package static func needsEscape(_ scalar: Unicode.Scalar, keepingNewlines: Bool) -> Bool {
        switch scalar.value {
        case 0x0A, 0x09: return !keepingNewlines
        case 0x00...0x1F, 0x7F, 0x80...0x9F: return true
        // Bidirectional embeddings, overrides and isolates reorder what a reader sees.
        case 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    private static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
