import Foundation
import SwerveProto
import SwerveStatus
import SwerveTraining
import SwerveTransport

/// One job's status, its events so far, and the WatchJob calls following it.
final class JobRecord: @unchecked Sendable {
    let id: String
    let model: String
    let continuous: Bool
    let token = CancellationToken()
    private let lock = NSCondition()
    private var state = "queued"
    private var message = ""
    private var version: Int64 = 0
    private var seen: UInt64 = 0
    private let created = Date()
    private var updated = Date()
    private var events: [JobEvent] = []
    private var watchers: [GRPCServerCall] = []
    private(set) var isFinishedFlag = false

    init(id: String, model: String, continuous: Bool) {
        self.id = id
        self.model = model
        self.continuous = continuous
        events.append(makeEvent(line: "job \(id) queued for model \(model)"))
    }

    var isFinished: Bool { lock.lock(); defer { lock.unlock() }; return isFinishedFlag }

    var examplesSeen: UInt64 {
        get { lock.lock(); defer { lock.unlock() }; return seen }
        set { lock.lock(); seen = newValue; lock.unlock() }
    }

    func status() -> JobStatus { lock.lock(); defer { lock.unlock() }; return statusLocked() }

    private func statusLocked() -> JobStatus {
        var s = JobStatus()
        s.jobID = id
        s.modelName = model
        s.state = state
        s.message = message
        s.publishedVersion = version
        s.examplesSeen = seen
        s.createdUnixMs = Int64(created.timeIntervalSince1970 * 1000)
        s.updatedUnixMs = Int64(updated.timeIntervalSince1970 * 1000)
        return s
    }

    /// Builds an event; call with the lock held (or from init).
    private func makeEvent(line: String, epoch: EpochProgress? = nil) -> JobEvent {
        var e = JobEvent()
        e.status = statusLocked()
        e.progressLine = line
        if let epoch {
            e.epoch = UInt32(epoch.epoch)
            e.trainLoss = epoch.trainLoss
            e.validationMetric = epoch.validationAccuracy ?? epoch.validationLoss ?? 0
            e.examplesPerSecond = epoch.examplesPerSecond
        }
        return e
    }

    private func emit(_ event: JobEvent) {
        // With the lock held.
        events.append(event)
        if events.count > 10_000 { events.removeFirst(events.count - 10_000) }
        let bytes = event.serializedBytes()
        watchers.removeAll { $0.isCancelled }
        for w in watchers { w.send(bytes) }
    }

    func setRunning() {
        lock.lock()
        state = "running"
        updated = Date()
        emit(makeEvent(line: "running"))
        lock.unlock()
    }

    func progress(_ event: PipelineEvent) {
        lock.lock()
        updated = Date()
        emit(makeEvent(line: event.line, epoch: event.epoch))
        lock.unlock()
    }

    /// A continuous round ended (the job goes on).
    func roundFinished(_ result: PipelineResult) {
        lock.lock()
        updated = Date()
        if let v = result.version { version = Int64(v) }
        message = "last round: " + result.summary
        emit(makeEvent(line: "round \(result.state.rawValue): \(result.summary)"))
        lock.unlock()
    }

    func finish(_ outcome: PipelineState, message text: String, version v: Int? = nil) {
        lock.lock()
        guard !isFinishedFlag else { lock.unlock(); return }
        state = outcome.rawValue
        message = text
        if let v { version = Int64(v) }
        updated = Date()
        isFinishedFlag = true
        emit(makeEvent(line: "\(outcome.rawValue): \(text)"))
        let done = watchers
        watchers = []
        lock.broadcast()
        lock.unlock()
        for w in done { w.finish(.ok) }
    }

    func addWatcher(_ call: GRPCServerCall) {
        lock.lock()
        for e in events { call.send(e.serializedBytes()) }
        if isFinishedFlag {
            lock.unlock()
            call.finish(.ok)
            return
        }
        watchers.append(call)
        lock.unlock()
    }

    func waitFinished(until deadline: Date) {
        lock.lock()
        while !isFinishedFlag && Date() < deadline { _ = lock.wait(until: min(deadline, Date().addingTimeInterval(0.2))) }
        lock.unlock()
    }
}
