import Prometheus
import SwerveClient
import SwerveTesting
import Testing
@testable import SwerveServer
@testable import SwerveServing

/// `swerve_request_duration_seconds` left swift-prometheus's locked Histogram<Duration> for a
/// lock-free one: dashboards, alerts and tests read the same text, so it is checked against
/// swift-prometheus's own rendering of the same observations.
@Suite("Request latency histogram")
struct LatencyHistogramTests {
    static let bounds: [Duration] = LatencyHistogram.boundsNs.map { .nanoseconds(Int64($0)) }

    /// Observations on, just below and just above bounds, zero, and past the last bound.
    static let observations: [UInt64] = [
        0, 1, 49_999, 50_000, 50_001, 99_999, 100_000, 999_999, 1_000_000, 1_000_001, 7_654_321,
        999_999_999, 1_000_000_000, 4_999_999_999, 5_000_000_000, 5_000_000_001, 12_345_678_901]

    /// swift-prometheus's text for `observations`, the series lines only.
    static func prometheusText(model: String, version: String, _ values: [UInt64]) -> [String] {
        let registry = PrometheusCollectorRegistry()
        let h = registry.makeDurationHistogram(name: LatencyHistogram.metricName,
                                               labels: [("model", model), ("version", version)], buckets: bounds)
        for v in values { h.record(.nanoseconds(Int64(v))) }
        return registry.emitToString().split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") }
    }

    static func ourText(_ h: LatencyHistogram) -> [String] {
        var buffer: [UInt8] = []
        h.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func emitsWhatSwiftPrometheusEmitsForTheSameObservations() {
        let h = LatencyHistogram(model: "breast_cancer_logreg", version: "1")
        for v in Self.observations { h.record(nanoseconds: v) }
        #expect(Self.ourText(h) == Self.prometheusText(model: "breast_cancer_logreg", version: "1", Self.observations))
        let (cumulative, sum) = h.snapshot()
        #expect(cumulative.last == UInt64(Self.observations.count))
        #expect(sum == Self.observations.reduce(0, +))
        // Bounds are inclusive (Prometheus's `le`): 50 µs exactly is in the first bucket.
        #expect(cumulative[0] == 4)
    }

    @Test func escapesLabelValuesAsTheExpositionFormatAsks() {
        let model = #"odd "model"\name"# + "\nline"
        let h = LatencyHistogram(model: model, version: "7")
        h.record(nanoseconds: 123_456)
        let ours = Self.ourText(h)
        #expect(ours == Self.prometheusText(model: model, version: "7", [123_456]))
        #expect(ours[0].hasPrefix(#"swerve_request_duration_seconds_bucket{model="odd \"model\"\\name\nline",version="7",le="0.00005"} 0"#))
    }

    @Test func emptyHistogramAndRepresentations() {
        let h = LatencyHistogram(model: "m", version: "1")
        let lines = Self.ourText(h)
        #expect(lines == Self.prometheusText(model: "m", version: "1", []))
        #expect(lines.last == #"swerve_request_duration_seconds_count{model="m",version="1"} 0"#)
        #expect(LatencyHistogram.seconds(0) == "0.0")
        #expect(LatencyHistogram.seconds(1) == "0.000000001")
        #expect(LatencyHistogram.seconds(5_000_000_000) == "5.0")
        #expect(LatencyHistogram.seconds(841_027) == "0.000841027")
    }

    /// Served requests land in the version's histogram, and the metrics page has it once, under
    /// one TYPE line, whatever the number of versions.
    @Test func servedRequestsAppearOnTheMetricsPage() async throws {
        // A name of its own: tests in this process run side by side and histograms are per process.
        let name = "latency_histogram_logreg"
        let model = TestModel.directory(PackagePaths.exampleRepository.appendingPathComponent("breast_cancer_logreg"), as: name)
        try await withInProcessServer([model]) { server async throws in
            for _ in 0..<3 {
                _ = try await server.client.infer(
                    model: name, inputs: ["input": ClientTensor(shape: [1, 30], fp32: Array(repeating: 0.5, count: 30))])
            }
            #expect(LatencyHistogram.forVersion(model: name, version: "1").snapshot().cumulative.last == 3)
            let handler = MetricsHTTPHandler(registry: PrometheusCollectorRegistry(), readiness: nil)
            let page = String(decoding: handler.answer(method: .GET, uri: "/metrics").2, as: UTF8.self)
            let typeLines = page.split(separator: "\n").filter { $0 == "# TYPE swerve_request_duration_seconds histogram" }
            #expect(typeLines.count == 1)
            #expect(page.contains(#"swerve_request_duration_seconds_count{model="latency_histogram_logreg",version="1"} 3"#))
        }
    }
}
