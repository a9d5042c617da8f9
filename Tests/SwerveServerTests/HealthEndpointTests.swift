import NIOHTTP1
import Prometheus
import SwerveClient
import SwerveTesting
import Testing
@testable import SwerveServer

/// The HTTP health endpoints on the metrics port answer from the same readiness as ServerReady
/// and gRPC health: 200 when ready, 503 with the reason while not ready or draining.
@Suite("HTTP health endpoints")
struct HealthEndpointTests {
    static let breastCancer = TestModel.example("breast_cancer_logreg")

    @Test func readyFollowsTheServiceAndTurns503WhenDrainingBegins() async throws {
        try await withInProcessServer([Self.breastCancer]) { server async throws in
            let service = server.service
            let handler = MetricsHTTPHandler(registry: PrometheusCollectorRegistry(), readiness: {
                let r = service.readiness()
                return (r.ready, r.reason)
            })
            #expect(handler.answer(method: .GET, uri: "/v2/health/ready").0 == .ok)
            #expect(handler.answer(method: .HEAD, uri: "/v2/health/ready?probe=1").0 == .ok)
            #expect(handler.answer(method: .GET, uri: "/v2/health/live").0 == .ok)
            #expect(try await server.client.serverReady())

            service.beginShutdown()
            let (status, _, body) = handler.answer(method: .GET, uri: "/v2/health/ready")
            #expect(status == .serviceUnavailable)
            #expect(String(decoding: body, as: UTF8.self).contains("draining"))
            // Live stays 200 while draining; ServerReady agrees with the HTTP answer, and
            // inference is still answered.
            #expect(handler.answer(method: .GET, uri: "/v2/health/live").0 == .ok)
            #expect(try await server.client.serverReady() == false)
            let out = try await server.client.infer(
                model: "breast_cancer_logreg", inputs: ["input": ClientTensor(shape: [1, 30], fp32: Array(repeating: 0.5, count: 30))])
            #expect(!out.outputs.isEmpty)
        }
    }

    @Test func notReadyDuringStartUpLoading() {
        let handler = MetricsHTTPHandler(registry: PrometheusCollectorRegistry(), readiness: { (false, "loading models at start-up") })
        let (status, _, body) = handler.answer(method: .GET, uri: "/v2/health/ready")
        #expect(status == .serviceUnavailable)
        #expect(String(decoding: body, as: UTF8.self) == "not ready: loading models at start-up\n")
    }

    @Test func unknownPathsAndMethodsAreRefused() {
        let handler = MetricsHTTPHandler(registry: PrometheusCollectorRegistry(), readiness: { (true, "") })
        #expect(handler.answer(method: .GET, uri: "/v2/health").0 == .notFound)
        #expect(handler.answer(method: .GET, uri: "/v2/health/ready/x").0 == .notFound)
        #expect(handler.answer(method: .GET, uri: "/V2/HEALTH/READY").0 == .notFound)
        #expect(handler.answer(method: .POST, uri: "/v2/health/ready").0 == .methodNotAllowed)
        #expect(handler.answer(method: .GET, uri: "/metrics?name=x").0 == .ok)
    }
}
