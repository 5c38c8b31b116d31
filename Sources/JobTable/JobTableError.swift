/// One problem found in a job table, at a line and column of its file.
public struct ConfigDiagnostic: Equatable, Sendable, CustomStringConvertible {
    public let line: Int
    public let column: Int
    public let message: String

    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "\(line):\(column): \(message)" }
}

/// Every problem found in a job table; nothing runs while there is one.
public struct JobTableError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let diagnostics: [ConfigDiagnostic]
    /// Set when the file itself cannot be had (missing, a folder, unreadable) rather than its
    /// content being wrong: what to do about it.
    public var hint: String?

    public init(path: String, diagnostics: [ConfigDiagnostic], hint: String? = nil) {
        self.path = path
        self.diagnostics = diagnostics
        self.hint = hint
    }

    /// `PATH:LINE:COL: message`, one problem per line, in file order.
    public var description: String {
        diagnostics.map { "\(path):\($0)" }.joined(separator: "\n")
    }
}
