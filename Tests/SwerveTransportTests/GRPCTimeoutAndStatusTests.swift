import Testing

@testable import SwerveTransport

@Suite struct GRPCTimeoutTests {
    @Test(arguments: [
        ("100m", Duration.milliseconds(100)), ("5S", .seconds(5)), ("1H", .seconds(3600)), ("2M", .seconds(120)),
        ("250u", .microseconds(250)), ("99999999n", .nanoseconds(99_999_999)), ("0S", .zero),
        ("00000001S", .seconds(1)),
    ])
    func parsesValid(_ text: String, _ expected: Duration) {
        #expect(GRPCTimeout.parse(text) == expected)
    }

    @Test(arguments: ["", "S", "5", "5s", "5x", "-5S", "123456789S", "1.5S", " 5S", "5S ", "５S", "5SS"])
    func rejectsInvalid(_ text: String) {
        #expect(GRPCTimeout.parse(text) == nil)
    }

    @Test func encodesWithinEightDigitsAndRoundTrips() {
        for duration: Duration in [.nanoseconds(1), .milliseconds(100), .seconds(5), .seconds(100_000_000), .seconds(86_400 * 365)] {
            let text = GRPCTimeout.encode(duration)
            #expect(text.count <= 9, "\(text)")
            let parsed = GRPCTimeout.parse(text)
            #expect(parsed != nil, "\(text)")
            #expect(parsed! >= duration, "\(text) must not shorten \(duration)")
        }
        #expect(GRPCTimeout.encode(.milliseconds(100)) == "100000u")
        #expect(GRPCTimeout.encode(.zero) == "0n")
    }
}

@Suite struct GRPCMessageEncodingTests {
    @Test(arguments: ["plain", "", "100% done", "ünïcødé 日本語", "tab\tnewline\n", "%41 is not A"])
    func roundTrips(_ message: String) {
        let encoded = GRPCMessageEncoding.encode(message)
        #expect(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E })
        #expect(GRPCMessageEncoding.decode(encoded) == message)
    }

    @Test func decodingIsLenient() {
        #expect(GRPCMessageEncoding.decode("50%") == "50%")
        #expect(GRPCMessageEncoding.decode("%zz%4") == "%zz%4")
        #expect(GRPCMessageEncoding.decode("a%20b") == "a b")
    }
}
