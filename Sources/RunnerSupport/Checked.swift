/// Checked conversions of outside numbers: nil instead of a trap.
package enum Checked {
    /// A whole number from a double, when it is finite and fits.
    package static func int(_ value: Double) -> Int? {
        guard value.isFinite, abs(value) < 9.0e15 else { return nil }
        return Int(value)
    }
}
