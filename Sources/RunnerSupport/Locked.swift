import Foundation

/// A value shared by concurrent tasks (or by the copies of a struct), read and changed only
/// under its lock.
package final class Locked<Value>: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var value: Value

    package init(_ value: Value) {
        self.value = value
    }

    package func withLock<T>(_ body: (inout Value) -> T) -> T {
        lock.withLock { body(&value) }
    }
}
