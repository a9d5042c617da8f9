import Dispatch
import Foundation
import Logging
import SwerveServing

/// Rescans the repository on a timer and loads new complete versions (and new models) by their policy.
final class RepositoryPoller: @unchecked Sendable {
    // `timer` is created once in init and only used through its own thread-safe API.
    private let timer: any DispatchSourceTimer
    private let manager: ModelManager
    private let logger: Logger
    private let known = NSLock()
    private var seen: [String: [Int]] = [:]

    init(manager: ModelManager, interval: Double, logger: Logger) {
        self.manager = manager
        self.logger = logger
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "swerve.repository-poll"))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        for name in (try? manager.repository.modelNames()) ?? [] { seen[name] = manager.repository.versions(of: name) }
        timer.setEventHandler { [weak self] in self?.scan() }
    }

    func start() { timer.resume() }
    func stop() { timer.cancel() }

    private func scan() {
        for name in (try? manager.repository.modelNames()) ?? [] {
            let versions = manager.repository.versions(of: name)
            known.lock()
            let changed = seen[name] != versions
            seen[name] = versions
            known.unlock()
            guard changed else { continue }
            logger.info("repository changed; reloading", metadata: ["model": "\(name)", "versions": "\(versions)"])
            do { try manager.load(model: name) } catch {
                logger.error("reload failed", metadata: ["model": "\(name)", "reason": "\(error)"])
            }
        }
    }
}
