import Foundation
import Engine
import RunnerSupport

/// Every line a person reads on standard output passes the terminal sanitiser: tables, `show`,
/// `preview` and `outbox` text, whatever came from outside into them. (JSON output is already
/// escaped, so it passes unchanged.) Shadows the standard library's `print` in this module, so
/// no command can print around it.
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    let text = items.map { "\($0)" }.joined(separator: separator)
    Swift.print(TerminalText.safe(text), terminator: terminator)
}
