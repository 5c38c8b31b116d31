import ArgumentParser
import Engine

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate the job table and report every error with its line and column.",
        discussion: "Prints \"ok: N jobs\" and exits 0, or prints FILE:LINE:COL: errors and exits 2."
    )

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let table = try options.load()
        print("ok: \(table.jobs.count) job\(table.jobs.count == 1 ? "" : "s")")
    }
}
