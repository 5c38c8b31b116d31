/// Expands `${VAR}` and `${VAR:-default}` from the environment; `$$` is a literal `$`.
package struct EnvironmentExpander: Sendable {
    package enum Failure: Error, Equatable {
        case unset(String)
        case malformed(String)
    }

    package let environment: [String: String]

    package func expand(_ text: String) throws(Failure) -> String {
        guard text.contains("$") else { return text }
        var result = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            let after = rest[rest.index(after: dollar)...]
            if after.hasPrefix("$") {
                result += "$"
                rest = after.dropFirst()
            } else if after.hasPrefix("{") {
                guard let close = after.firstIndex(of: "}") else {
                    throw .malformed("\"${\" without a closing \"}\"")
                }
                let inner = after[after.index(after: after.startIndex)..<close]
                result += try value(of: String(inner))
                rest = after[after.index(after: close)...]
            } else {
                result += "$"
                rest = after
            }
        }
        return result + rest
    }

    private func value(of reference: String) throws(Failure) -> String {
        let name: String
        let fallback: String?
        if let range = reference.range(of: ":-") {
            name = String(reference[..<range.lowerBound])
            fallback = String(reference[range.upperBound...])
        } else {
            name = reference
            fallback = nil
        }
        guard let first = name.first, first == "_" || first.isLetter,
            name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) })
        else {
            throw .malformed("\"${\(reference)}\" is not a variable name (letters, digits and _)")
        }
        if let value = environment[name], !(fallback != nil && value.isEmpty) { return value }
        if let fallback { return fallback }
        throw .unset(name)
    }
}
