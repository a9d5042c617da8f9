import Metrics
import SwerveTransport

#if canImport(Glibc)
import Glibc
#endif

/// The gRPC listener's events as metrics (through swift-metrics, so in whatever backend the
/// executable bootstrapped; Prometheus for `swerve serve`):
///
/// - `swerve_grpc_connections`: connections open now.
/// - `swerve_grpc_connections_rejected_total`: connections closed at once because
///   `--max-connections` were open.
/// - `swerve_grpc_accept_errors_total{errno}`: accept(2) failures (EMFILE, ENFILE, ...).
/// - `swerve_grpc_connections_aged_total`: connections sent GOAWAY for their age
///   (`--max-connection-age`).
struct ListenerMetrics: GRPCListenerObserver {
    private let open = Gauge(label: "swerve_grpc_connections")
    private let rejected = Counter(label: "swerve_grpc_connections_rejected_total")
    private let aged = Counter(label: "swerve_grpc_connections_aged_total")

    func connectionOpened(open: Int) { self.open.record(open) }
    func connectionClosed(open: Int) { self.open.record(open) }
    func connectionRejected() { rejected.increment() }
    func connectionAged() { aged.increment() }
    func acceptFailed(errno code: CInt) {
        Counter(label: "swerve_grpc_accept_errors_total", dimensions: [("errno", Self.name(code))]).increment()
    }

    private static func name(_ code: CInt) -> String {
        switch code {
        case EMFILE: "EMFILE"
        case ENFILE: "ENFILE"
        case ENOBUFS: "ENOBUFS"
        case ENOMEM: "ENOMEM"
        case ECONNABORTED: "ECONNABORTED"
        default: String(code)
        }
    }
}
