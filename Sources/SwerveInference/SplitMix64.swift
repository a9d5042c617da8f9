/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014):
/// a tiny, fast, seedable generator whose output is the same on every platform and Swift version,
/// which `SystemRandomNumberGenerator` is not.
///
/// Swerve's one seeded generator: training (data splits, weight initialization, shuffling), the
/// `swerve bench` load generator and the tests all draw from it, so a seed names the same stream
/// everywhere. Training's outputs for a given seed depend on this exact algorithm: changing `next()`
/// or `mix(_:)` changes every model trained with a seed. Not for anything security-related.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The generator's whole state; the next output is `mix(state &+ golden gamma)`.
    public var state: UInt64

    /// A generator whose whole output is determined by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// The SplitMix64 finalizer: a bijection on 64-bit words that scrambles every bit. Also used on
    /// its own as a stable, seedable hash of an index (e.g. the order of a data split).
    @inlinable
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) from the top 53 bits.
    @inlinable
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}
