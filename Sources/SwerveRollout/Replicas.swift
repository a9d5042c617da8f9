import SwerveClient
import SwerveProto
import SwerveStatus
import SwerveTransport

/// One serving replica as the rollout sees it: its per-version state, applied labels and
/// evidence counters (`swerve.v1.ServingInsights/RolloutStatistics`).
public protocol RolloutReplica: Sendable {
    /// host:port, for messages.
    var name: String { get }
    func rolloutStatistics(model: String) async throws -> RolloutStatisticsResponse
    /// The inputs (names, datatypes, shapes) a version of the model takes (ModelMetadata), nil
    /// when the replica cannot say.
    func inputSignature(model: String, version: Int) async throws -> [TensorMetadata]?
}

/// A replica reached over gRPC. The connection is made on first use and made again after a
/// call fails with UNAVAILABLE (a replica restarted), so one broken connection does not end a
/// rollout; every call has a deadline.
public actor ClientReplica: RolloutReplica {
    public nonisolated let name: String
    let host: String
    let port: Int
    let timeout: Duration
    let tls: GRPCClientTLS?
    var client: SwerveClient?

    public init(host: String, port: Int, timeout: Duration = .seconds(10), tls: GRPCClientTLS? = nil) {
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = tls
        name = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public func rolloutStatistics(model: String) async throws -> RolloutStatisticsResponse {
        let c: SwerveClient
        if let client { c = client } else {
            c = try await SwerveClient.connect(host: host, port: port, defaultTimeout: timeout, tls: tls)
            client = c
        }
        do {
            return try await c.rolloutStatistics(name: model, timeout: timeout)
        } catch let status as GRPCStatus where status.code == .unavailable || status.code == .deadlineExceeded {
            client = nil
            await c.close()
            throw status
        }
    }

    public func inputSignature(model: String, version: Int) async throws -> [TensorMetadata]? {
        let c: SwerveClient
        if let client { c = client } else {
            c = try await SwerveClient.connect(host: host, port: port, defaultTimeout: timeout, tls: tls)
            client = c
        }
        return try await c.modelMetadata(name: model, version: String(version), timeout: timeout).inputs
    }

    /// Closes the connection (a later call opens a new one).
    public func close() async {
        if let client { await client.close() }
        client = nil
    }
}

/// One replica's answer, or why there is none.
public struct ReplicaReading: Sendable {
    public var replica: String
    public var response: RolloutStatisticsResponse?
    public var error: String?

    /// The record of `version` on this replica, nil when it lists none.
    public func evidence(_ version: Int) -> VersionEvidence? {
        response?.versions.first { $0.version == String(version) }
    }
}

extension Array where Element == any RolloutReplica {
    /// Every replica's RolloutStatistics for `model`, read concurrently; a failure is recorded,
    /// not thrown.
    func readAll(model: String) async -> [ReplicaReading] {
        await withTaskGroup(of: (Int, ReplicaReading).self) { group in
            for (i, r) in self.enumerated() {
                group.addTask {
                    do {
                        return (i, ReplicaReading(replica: r.name, response: try await r.rolloutStatistics(model: model)))
                    } catch let s as GRPCStatus {
                        return (i, ReplicaReading(replica: r.name, error: "\(s.code.canonicalName): \(s.message)"))
                    } catch {
                        return (i, ReplicaReading(replica: r.name, error: "\(error)"))
                    }
                }
            }
            var out = [ReplicaReading?](repeating: nil, count: self.count)
            for await (i, r) in group { out[i] = r }
            return out.map { $0! }
        }
    }
}

/// Which of `versions` are not READY on which replica ("r1:8001: v3 LOADING", "r2:8001:
/// unreachable (…)"); empty when every replica has every one ready.
public func versionsNotReady(_ versions: [Int], model: String, replicas: [any RolloutReplica]) async -> [String] {
    var out: [String] = []
    for r in await replicas.readAll(model: model) {
        if let e = r.error { out.append("\(r.replica): unreachable (\(e))"); continue }
        for v in versions {
            guard let ev = r.evidence(v) else { out.append("\(r.replica): v\(v) not loaded"); continue }
            if ev.state != "READY" { out.append("\(r.replica): v\(v) \(ev.state)\(ev.reason.isEmpty ? "" : " (\(ev.reason))")") }
        }
    }
    return out
}
