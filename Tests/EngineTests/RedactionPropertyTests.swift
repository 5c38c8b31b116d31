import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import Processes
@testable import Redaction
import TestSupport

/// Redaction that holds (issue 26): secrets are masked on the whole output before the tail is
/// cut, in each of the forms they travel in, under every name that holds one.
@Suite("Redaction: the whole output before the cut, every form, every name")
struct RedactionPropertyTests {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_@/:?&=+%\"\\ ")

    @Test("for random secrets in each encoding at any cut position, no stored tail holds the secret or a 6-character piece of it")
    func tailsHoldNoPiece() {
        let seed = UInt64(ProcessInfo.processInfo.environment["RUNNER_PROPERTY_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        var random = SplitMix64(seed: seed)
        for round in 0..<300 {
            let length = Int.random(in: 6...40, using: &random)
            let secret = String((0..<length).map { _ in Self.alphabet.randomElement(using: &random)! })
            let forms = Array(Redactor.forms(of: secret))
            let form = forms.randomElement(using: &random)!
            let redactor = Redactor(environment: ["MY_TOKEN": secret])
            // The encoded secret placed so the 4 KiB cut falls anywhere in it, or near it.
            let after = Int.random(in: 0...(CommandProcess.tailBytes + 64), using: &random)
            let output = String(repeating: ".", count: 6000) + form + String(repeating: ".", count: after)
            let tail = CommandProcess.storedTail(Array(output.utf8), redactor: redactor)
            #expect(tail.utf8.count <= CommandProcess.tailBytes)
            let pieces = (0...(secret.count - 6)).map { String(Array(secret)[$0..<($0 + 6)]) }
            let leaked = pieces.first { tail.contains($0) } ?? (tail.contains(form) ? form : nil)
            #expect(leaked == nil, "seed \(seed) round \(round): \(leaked ?? "") of \(form.debugDescription) left in the tail")
            if leaked != nil { return }
        }
    }

    @Test("every name that holds a secret, URL userinfo with or without a password, and secret query keys are masked")
    func namesAndPlaces() {
        let environment = [
            "TOKEN": "tok-1234", "SECRET": "sec-5678", "APIKEY": "api-abcd", "GITHUB_PAT": "ghp_zyxw",
            "DEPLOY_PASSPHRASE": "pass-phr", "GCP_CREDENTIALS": "{\"k\": 1}", "SLACK_WEBHOOK_URL": "https://hooks.slack/T0/B0/xyz",
            "SHORT_KEY": "abc", "PLAIN": "not-a-secret",
        ]
        let redact = Redactor(environment: environment)
        for (name, value) in environment where !["SHORT_KEY", "PLAIN"].contains(name) {
            #expect(!redact("x \(value) y").contains(value), "\(name)")
        }
        #expect(redact("abc not-a-secret") == "abc not-a-secret", "short values and ordinary names are left")
        #expect(redact("https://ghp_tok123@github.com/x") == "https://[redacted]@github.com/x")
        #expect(redact("https://user:pw123456@host/x") == "https://user:[redacted]@host/x")
        #expect(
            redact("GET /v1?api_key=AKIA123&page=2&token=t0k#frag sig=abc")
                == "GET /v1?api_key=[redacted]&page=2&token=[redacted]#frag sig=abc")
        // Encoded forms of a secret value.
        let secret = Redactor(environment: ["A_TOKEN": "p@ss/w rd\"x"])
        for text in ["p%40ss%2Fw%20rd%22x", #"p@ss\/w rd\"x"#, "cEBzcy93IHJkIng="] {
            #expect(secret("[\(text)]") == "[[redacted]]", "\(text)")
        }
    }
}
