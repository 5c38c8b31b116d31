import Foundation

/// The README, as the tests that check what it promises read it.
package enum Readme {
    package static let text: String =
        (try? String(contentsOf: TestDatabase.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)) ?? ""
}
