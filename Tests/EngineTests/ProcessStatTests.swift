import Foundation
import Testing

@testable import Engine
@testable import Processes
import TestSupport

@Suite("/proc/PID/stat, as the orphan reaper reads it")
struct ProcessStatTests {
    @Test("state and parent come after the last ')', whatever the command name holds")
    func oddNames() throws {
        let plain = try #require(ProcessStat(Data("4242 (sleep) Z 17 4242 4242 0 -1".utf8)))
        #expect(plain.state == "Z" && plain.parent == 17)
        // A process may name itself anything up to 15 bytes, spaces and parentheses included.
        let odd = try #require(ProcessStat(Data("99 (a) S 3 (b) R 5 x".utf8)))
        #expect(odd.state == "R" && odd.parent == 5)
        #expect(ProcessStat(Data("garbage".utf8)) == nil)
        #expect(ProcessStat(Data("1 (x) S".utf8)) == nil)
        #expect(ProcessStat(Data("1 (x) S notapid".utf8)) == nil)
    }

    @Test("children(of:) finds this process's own child with its state")
    func children() throws {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["5"]
        try child.run()
        defer { child.terminate() }
        let found = ProcessStat.children(of: getpid()).first { $0.pid == child.processIdentifier }
        #expect(found.map { "SR".contains($0.state) } == true, "\(ProcessStat.children(of: getpid()))")
    }
}
