import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import Outbox
import TestSupport

@Suite("Email bodies and payloads")
struct EmailTests {
    @Test(
        "HTML escaping changes the five special characters and nothing else",
        arguments: [
            ("plain text", "plain text"),
            ("", ""),
            (#"<script>alert("x")</script>"#, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"),
            ("Tom & Jerry's", "Tom &amp; Jerry&#39;s"),
            ("Ünïcødé <b>日本</b> ✓ & é", "Ünïcødé &lt;b&gt;日本&lt;/b&gt; ✓ &amp; é"),
            ("&amp;", "&amp;amp;"),
        ])
    func escaping(raw: String, escaped: String) {
        #expect(htmlEscape(raw) == escaped)
    }

    @Test("the stored payload is the email's JSON, and reads back as the same email")
    func payload() throws {
        let email = Email(
            to: ["a@example.com", "b@example.com"], cc: ["boss@example.com"], subject: "[Urgent] \"Q3\" — ✓",
            text: "line one\nline two\ttab \\ backslash", html: "<p>Ünïcødé &amp; more</p>")
        #expect(email.payloadText == email.json.text)
        let parsed = try #require(JSONValue.parse(email.payloadText))
        #expect(Email(json: parsed) == email)
    }
}
