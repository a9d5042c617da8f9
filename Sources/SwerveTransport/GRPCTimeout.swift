/// The `grpc-timeout` header: 1 to 8 ASCII digits and a unit, H (hours), M (minutes),
/// S (seconds), m (milliseconds), u (microseconds) or n (nanoseconds).
enum GRPCTimeout {
    /// Parses a header value; nil when it breaks the grammar.
    static func parse(_ value: some StringProtocol) -> Duration? {
        let utf8 = Array(value.utf8)
        guard utf8.count >= 2, utf8.count <= 9 else { return nil }
        var amount: Int64 = 0
        for digit in utf8.dropLast() {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            amount = amount * 10 + Int64(digit - UInt8(ascii: "0"))
        }
        switch utf8.last! {
        case UInt8(ascii: "H"): return .seconds(amount * 3600)
        case UInt8(ascii: "M"): return .seconds(amount * 60)
        case UInt8(ascii: "S"): return .seconds(amount)
        case UInt8(ascii: "m"): return .milliseconds(amount)
        case UInt8(ascii: "u"): return .microseconds(amount)
        case UInt8(ascii: "n"): return .nanoseconds(amount)
        default: return nil
        }
    }

    /// Encodes a duration in the finest unit whose amount fits in 8 digits, rounding up so the
    /// peer never sees a shorter deadline than asked for. Negative durations encode as 0n.
    static func encode(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return "0n" }
        // Nanoseconds, saturating well above the 8-digit range.
        let nanos: Int64 =
            seconds > 1_000_000_000 ? Int64.max / 2 : seconds * 1_000_000_000 + (attoseconds + 999_999_999) / 1_000_000_000
        let maxAmount: Int64 = 99_999_999
        let units: [(Int64, Character)] = [
            (1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M"),
            (3_600_000_000_000, "H"),
        ]
        for (scale, unit) in units {
            let amount = (nanos + scale - 1) / scale
            if amount <= maxAmount { return "\(amount)\(unit)" }
        }
        return "\(maxAmount)H"
    }
}
