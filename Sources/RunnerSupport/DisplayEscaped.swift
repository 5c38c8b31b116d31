import Foundation

/// A value from outside shown in an error, a log or a record: control characters escaped
/// (`\r`, `\n`, `\x07`), quotes and backslashes too, at most 200 bytes.
public func displayEscaped(_ text: String) -> String {
    var output = ""
    for scalar in text.unicodeScalars {
        if output.utf8.count >= 200 {
            output += "…"
            break
        }
        switch scalar {
        case "\r": output += "\\r"
        case "\n": output += "\\n"
        case "\t": output += "\\t"
        case "\"": output += "\\\""
        case "\\": output += "\\\\"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                output += String(format: "\\x%02X", scalar.value)
            } else {
                output.unicodeScalars.append(scalar)
            }
        }
    }
    return output
}
