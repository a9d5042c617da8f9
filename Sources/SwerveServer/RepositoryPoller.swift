import Dispatch
import Foundation
import Logging
import SwerveRepository
import SwerveServing

/// Rescans the repository on a timer and reloads a model whenever what decides its serving
/// changed on disk (`ModelRepository.Snapshot`: its complete versions or its config.json), and
/// loads new models. Watching the versions alone missed a version policy rewritten after the
/// version it names was already seen (the registry publishes, then promotes).
final class RepositoryPoller: @unchecked Sendable {
    // `timer` is created once in init and only used through its own thread-safe API.
    private let timer: any DispatchSourceTimer
    private let manager: ModelManager
    private let logger: Logger
    private let known = NSLock()
    private var seen: [String: ModelRepository.Snapshot] = [:]

    init(manager: ModelManager, interval: Double, logger: Logger) {
        self.manager = manager
        self.logger = logger
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "swerve.repository-poll"))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        for name in (try? manager.repository.modelNames()) ?? [] { seen[name] = manager.repository.snapshot(of: name) }
        timer.setEventHandler { [weak self] in self?.scan() }
    }

    func start() { timer.resume() }
    func stop() { timer.cancel() }

    /// Reloads the changed models, several at once (`ModelManager.load(models:)`), so a slow
    /// one does not hold up the others; each load ends within the manager's load timeout.
    private func scan() {
        var changed: [String] = []
        for name in (try? manager.repository.modelNames()) ?? [] {
            let snapshot = manager.repository.snapshot(of: name)
            known.lock()
            let differs = seen[name] != snapshot
            seen[name] = snapshot
            known.unlock()
            guard differs else { continue }
            logger.info("repository changed; reloading", metadata: ["model": "\(name)", "versions": "\(snapshot.versions)"])
            changed.append(name)
        }
        for (name, error) in manager.load(models: changed).sorted(by: { $0.key < $1.key }) {
            logger.error("reload failed", metadata: ["model": "\(name)", "reason": "\(error)"])
        }
    }
}
