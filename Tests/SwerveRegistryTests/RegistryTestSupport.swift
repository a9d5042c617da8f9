import Foundation
import Logging
import SwerveClient
import SwerveProto
import SwerveRPC
import SwerveRegistry
import SwerveRepository
import SwerveTesting
import SwerveTransport
import Synchronization

let quietLogger = Logger(label: "swerve.registry-test", factory: { _ in SwiftLogNoOpLogHandler() })

/// A gRPC server on 127.0.0.1 and a port the system picks, answering with `handler`.
func startServer(_ handler: any GRPCCallHandler) async throws -> GRPCServer {
    var config = GRPCServerConfiguration()
    config.host = "127.0.0.1"
    config.port = 0
    config.eventLoopThreads = 1
    let server = GRPCServer(configuration: config, handler: handler, logger: quietLogger)
    try await server.start()
    return server
}

/// A registry service over `repository` (with `token` as its admin token, if any) and its server.
func startRegistry(_ repository: URL, token: String? = nil, limits: RegistryLimits = RegistryLimits()) async throws -> (GRPCServer, RegistryService) {
    let guardian = ControlPlaneGuard(authorization: try token.map { try AdminAuthorization(token: $0) }, logger: quietLogger, service: "registry")
    let service = RegistryService(repository: repository, limits: limits, logger: quietLogger, controlPlane: guardian)
    return (try await startServer(service), service)
}

/// What a follower did to its (fake) server.
final class RecordingTarget: Sendable {
    let loads = Mutex<[String]>([])
    let unloads = Mutex<[String]>([])
    let snapshots = Atomic<Int>(0)
    /// Runs at every load, before it is recorded (e.g. to check the files on disk then).
    let onLoad: @Sendable (String) -> Void

    init(onLoad: @escaping @Sendable (String) -> Void = { _ in }) { self.onLoad = onLoad }

    var target: RegistryFollowerTarget {
        RegistryFollowerTarget(
            load: { name in self.onLoad(name); self.loads.withLock { $0.append(name) } },
            unload: { name in self.unloads.withLock { $0.append(name) } },
            snapshotApplied: { self.snapshots.add(1, ordering: .relaxed) })
    }
}

func quickFollowOptions(port: Int, token: String? = nil) -> RegistryFollowOptions {
    var o = RegistryFollowOptions(host: "127.0.0.1", port: port)
    o.token = token
    o.retryDelay = .milliseconds(50)
    o.maxRetryDelay = .milliseconds(200)
    return o
}

func hex(_ bytes: [UInt8]) -> String { SHA256.hash(bytes).map { String(format: "%02x", $0) }.joined() }

func fileBytes(_ url: URL) -> [UInt8]? { (try? Data(contentsOf: url)).map(Array.init) }

/// Entries of a folder (empty when it does not exist).
func entries(_ url: URL) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted() }
