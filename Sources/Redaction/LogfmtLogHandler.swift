import Foundation
import Logging
import RunnerSupport

/// One line per event on stderr, as logfmt (`ts=… level=info msg="run claimed" job=x run_id=5`)
/// or JSON. Callers put job and run id in the metadata; every value passes the ``Redactor``, so a
/// secret that reaches a message (a provider echoing its key in an error) is masked.
public struct LogfmtLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case logfmt, json
    }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    package let label: String
    package let format: Format

    public init(label: String, format: Format) {
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let redact = Redactor.process
        var fields: [(String, String)] = [
            ("ts", Self.timestamp()), ("level", event.level.rawValue), ("msg", redact(event.message.description)),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in merged.keys.sorted() { fields.append((key, redact(merged[key]!.description))) }
        let line: String
        switch format {
        case .logfmt:
            line = fields.map { "\($0.0)=\(Self.logfmtValue($0.1))" }.joined(separator: " ")
        case .json:
            let object = JSONValue.object(
                Dictionary(fields.map { ($0.0, Self.jsonValue(key: $0.0, $0.1)) }, uniquingKeysWith: { $1 }))
            line = object.text
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Keys whose values are counts, ids or measures: JSON numbers, so a log pipeline can sum and
    /// compare them (always numbers for these keys, never for others, so a key keeps one type).
    package static let numericKeys: Set<String> = [
        "run_id", "live_run_id", "after_run_id", "effect_id", "attempt", "of", "count", "runs", "jobs", "moved",
        "deleted", "interrupted", "http_status", "exit_code", "pid", "signal",
    ]

    package static func jsonValue(key: String, _ value: String) -> JSONValue {
        let numeric = numericKeys.contains(key) || key.hasSuffix("_ms") || key.hasSuffix("_bytes")
        // Only a plain decimal (no "inf", "0x10" or "1e999" from Double's own parser) becomes a number.
        if numeric, value.wholeMatch(of: /-?[0-9]{1,15}(\.[0-9]{1,6})?/) != nil, let number = Double(value) {
            return .number(number)
        }
        return .string(value)
    }

    package static func logfmtValue(_ raw: String) -> String {
        // A command's stderr or a product row's text: no escape sequence reaches the terminal.
        let value = TerminalText.safe(raw)
        if !value.isEmpty && !value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\n" }) {
            return value
        }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(escaped)\""
    }

    package static func timestamp() -> String {
        let now = Date()
        let millis = Int((now.timeIntervalSince1970 * 1000).truncatingRemainder(dividingBy: 1000))
        return InstantFormat.string(now, in: TimeZone(identifier: "UTC")!).replacingOccurrences(of: "+00:00", with: "")
            + String(format: ".%03dZ", millis)
    }
}
