import Foundation

/// Text-level fixes made before YAML parsing, so that one mistake does not hide the others.
///
/// Each fix is reported as a diagnostic; the patched text is parsed only to find further errors,
/// never to run anything.
package enum YAMLPreflight {
    /// Finds values such as `schedule: */5 * * * *`, which YAML reads as an alias, and
    /// `schedule: @daily`, which starts with a character YAML reserves: neither parses. Reports
    /// each one, and quotes it in the returned text.
    package static func quoteStarValues(in text: String) -> (text: String, diagnostics: [ConfigDiagnostic]) {
        var diagnostics: [ConfigDiagnostic] = []
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for (index, line) in lines.enumerated() {
            guard let (keyPart, value, comment) = splitStarValue(line) else { continue }
            let column = keyPart.count + 1
            let key = keyPart.trimmingCharacters(in: .whitespaces).dropLast().trimmingCharacters(in: .whitespaces)
            let first = value.first.map(String.init) ?? ""
            let why = first == "*" ? "which YAML reads as an alias" : "which YAML reserves"
            diagnostics.append(
                ConfigDiagnostic(
                    line: index + 1, column: column,
                    message: "\(key) value \(value) starts with \"\(first)\", \(why): "
                        + "quote it, as in \(key): \"\(value)\""))
            lines[index] = keyPart + "\"" + value + "\"" + comment
        }
        return (lines.joined(separator: "\n"), diagnostics)
    }

    /// Splits `  key: *...  # comment` where the `*` cannot start a valid alias name, and
    /// `  key: @...` or `` key: `... ``, which YAML reserves.
    private static func splitStarValue(_ line: String) -> (String, String, String)? {
        guard let colon = line.range(of: ": ") else { return nil }
        let keyText = line[..<colon.lowerBound].trimmingCharacters(in: .whitespaces)
        guard !keyText.isEmpty, !keyText.hasPrefix("#"), !keyText.contains("\""), !keyText.contains("'") else {
            return nil
        }
        let afterColon = line[colon.upperBound...]
        let leading = afterColon.prefix(while: { $0 == " " || $0 == "\t" })
        let valueStart = afterColon.dropFirst(leading.count)
        if valueStart.hasPrefix("*") {
            let next = valueStart.dropFirst().first
            if let next, next.isLetter || next.isNumber || next == "_" || next == "-" { return nil }
        } else if !valueStart.hasPrefix("@") && !valueStart.hasPrefix("`") {
            return nil
        }
        var value = String(valueStart)
        var comment = ""
        if let hash = value.range(of: " #") {
            comment = String(value[hash.lowerBound...])
            value = String(value[..<hash.lowerBound])
        }
        value = value.trimmingCharacters(in: .whitespaces)
        return (String(line[..<colon.upperBound]) + leading, value, comment)
    }

    /// Renames a repeated mapping key after `firstLine` (same indentation, same mapping) to a
    /// placeholder, so parsing can go on; returns the placeholders and where they stand.
    package static func renameDuplicates(
        of key: String, firstLine: Int, column: Int, in text: String, nextPlaceholder: inout Int
    ) -> (text: String, renamed: [(placeholder: String, line: Int)]) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var renamed: [(String, Int)] = []
        var index = firstLine  // the line after the first occurrence (0-based index)
        let indent = column - 1
        while index < lines.count {
            let line = lines[index]
            let content = line.drop(while: { $0 == " " })
            let lineIndent = line.count - content.count
            if !content.isEmpty && !content.hasPrefix("#") {
                if lineIndent < indent { break }
                if lineIndent == indent {
                    for spelling in [key, "\"\(key)\"", "'\(key)'"] where content.hasPrefix(spelling + ":") {
                        nextPlaceholder += 1
                        let placeholder = "__runner_duplicate_\(nextPlaceholder)__"
                        lines[index] = String(line.prefix(indent)) + placeholder + content.dropFirst(spelling.count)
                        renamed.append((placeholder, index + 1))
                        break
                    }
                }
            }
            index += 1
        }
        return (lines.joined(separator: "\n"), renamed)
    }
}
