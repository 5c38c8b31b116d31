import Foundation

/// A benchmark's own correctness check: a figure from a run that did the wrong thing is no
/// figure, so a failed check prints why and exits 1.
public func benchmarkCheck(_ condition: Bool, _ message: @autoclosure () -> String) {
    guard !condition else { return }
    print("FAIL: \(message())")
    Foundation.exit(1)
}
