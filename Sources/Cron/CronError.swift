/// Why a schedule expression was rejected, in words a user can act on.
public struct CronError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
