import SwerveInference
@testable import SwerveServing

/// Helpers shared by the serving-path tests.
enum PathsFixtures {
    /// The key of a one-row INT64 request carrying `id`, for model "m" version 1.
    static func key(_ id: Int, model: String = "m", version: Int = 1) -> RequestKey {
        RequestKey(model: model, version: version, outputs: ["y"],
                   inputs: [("x", Tensor(shape: [1, 1], data: .int64([Int64(id)])))])
    }

    /// An output value derived from `id`, so a test can tell which key it was stored under.
    static func value(_ id: Int, width: Int = 4) -> [Tensor] {
        [Tensor(shape: [1, width], data: .fp32((0..<width).map { Float(id) + Float($0) / 8 }))]
    }

    /// A stable, well-spread 64-bit name for item `i` of a synthetic stream.
    static func itemHash(_ i: Int) -> UInt64 { Hash64.mix(UInt64(i) &+ 0x1234_5678) }
}
