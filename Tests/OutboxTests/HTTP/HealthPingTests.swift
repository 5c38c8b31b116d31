import Testing

@testable import Engine
@testable import HTTPClients
import TestSupport

@Suite("Health pings")
struct HealthPingTests {
    @Test(
        "start and fail go after the path, before any query; success is the URL itself",
        arguments: [
            ("https://ping.example/abc", "https://ping.example/abc/start", "https://ping.example/abc/fail"),
            ("https://ping.example/abc/", "https://ping.example/abc/start", "https://ping.example/abc/fail"),
            (
                "https://ping.example/abc?rid=7", "https://ping.example/abc/start?rid=7",
                "https://ping.example/abc/fail?rid=7"
            ),
        ])
    func addresses(url: String, start: String, fail: String) {
        #expect(HealthPing.address(url, .start) == start)
        #expect(HealthPing.address(url, .fail) == fail)
        #expect(HealthPing.address(url, .success) == url)
    }
}
