import Metrics
import Synchronization

/// One model version's request metrics: `swerve_requests_total{model,version,status}` and
/// `swerve_request_duration_seconds{model,version}`. The handles are made once per version, so
/// counting a request builds no label strings and hashes nothing.
public final class RequestMetrics: Sendable {
    private let model: String
    private let version: String
    private let succeeded: Counter
    private let latency: LatencyHistogram
    /// Failure counters by gRPC status code, made on first use (few codes ever occur).
    private let failed = Mutex<[Int: Counter]>([:])

    /// The `status` label of successful requests (gRPC's canonical name for code 0).
    public static let okLabel = "OK"

    public init(model: String, version: String) {
        self.model = model
        self.version = version
        succeeded = Counter(label: "swerve_requests_total", dimensions: [("model", model), ("version", version), ("status", Self.okLabel)])
        latency = LatencyHistogram.forVersion(model: model, version: version)
    }

    /// A successful request that took `nanoseconds` from arrival to answer.
    public func recordSuccess(nanoseconds: UInt64) {
        succeeded.increment()
        latency.record(nanoseconds: nanoseconds)
    }

    /// A failed request; `status` is the code's canonical name (its label value).
    public func recordFailure(code: Int, status: String) {
        let counter = failed.withLock { counters in
            if let c = counters[code] { return c }
            let c = Counter(label: "swerve_requests_total", dimensions: [("model", model), ("version", version), ("status", status)])
            counters[code] = c
            return c
        }
        counter.increment()
    }
}
