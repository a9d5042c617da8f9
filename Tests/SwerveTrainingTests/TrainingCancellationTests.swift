import Foundation
@testable import SwerveTraining
import Testing

/// The trainer's stop hook: a cancelled run ends on its own thread, not just in the caller's view.
@Suite("Training: cancellation")
struct TrainingCancellationTests {
    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var set = false
        func raise() { lock.lock(); set = true; lock.unlock() }
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return set }
    }

    final class Outcome: @unchecked Sendable {
        var error: (any Error)?
        var returnedModel = false
    }

    /// A job that would run for minutes (10 000 epochs) is stopped after its first epoch: the
    /// training thread returns a `.cancelled` error within a bounded time and its epoch counter
    /// stops growing.
    @Test func aLongRunStopsSoonAfterItsFirstEpoch() throws {
        let data = try TrainingFixtures.synthetic(rows: 20_000, numeric: 8, categorical: 1)
        let split = try data.split(validation: 0.1, holdout: 0.1, seed: 3)
        let config = TrainingConfiguration(model: .mlp, hiddenLayers: [32], epochs: 10_000, batchSize: 32, patience: 0, threads: 2)
        let epochs = LockedCounter()
        let stop = Flag()
        let outcome = Outcome()
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            do {
                _ = try Trainer(config).train(on: split.train, validation: split.validation,
                                              progress: { _ in _ = epochs.increment() }, shouldStop: { stop.isSet })
                outcome.returnedModel = true
            } catch {
                outcome.error = error
            }
            finished.signal()
        }
        thread.start()

        let deadline = Date().addingTimeInterval(120)
        while epochs.value < 1 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        try #require(epochs.value >= 1)
        let cancelled = Date()
        stop.raise()
        // Bounded: at most the rest of the current stop-check interval (16 mini-batches) plus one validation pass.
        let ended = finished.wait(timeout: .now() + 10) == .success
        try #require(ended, "the training thread did not stop within 10 s of the cancellation")
        let latency = Date().timeIntervalSince(cancelled)
        let atStop = epochs.value
        Thread.sleep(forTimeInterval: 0.3)  // the observation window itself: no epoch may end in it
        #expect(epochs.value == atStop, "epochs kept growing after the trainer returned")
        #expect(atStop <= 2)
        #expect(!outcome.returnedModel)
        #expect((outcome.error as? TrainingError)?.code == .cancelled)
        #expect(latency < 5)
    }

    /// The hook is polled before each epoch and every `stopCheckInterval` mini-batches within one.
    @Test func theHookIsPolledWithinAnEpoch() throws {
        let data = try TrainingFixtures.synthetic(rows: 4_000, numeric: 4, categorical: 0)
        let polls = LockedCounter()
        let epochs = LockedCounter()
        let config = TrainingConfiguration(model: .logistic, epochs: 5, batchSize: 8, patience: 0)
        // Poll 1: before epoch 1; poll 2: after 16 mini-batches; poll 3: after 32 → stop.
        let error = #expect(throws: TrainingError.self) {
            _ = try Trainer(config).train(on: data, progress: { _ in _ = epochs.increment() }, shouldStop: { polls.increment() >= 3 })
        }
        #expect(error?.code == .cancelled)
        #expect(error?.message.contains("epoch 1 after \(2 * Trainer.stopCheckInterval) mini-batches") == true)
        #expect(epochs.value == 0)
        #expect(polls.value == 3)
    }

    /// `TrainingJob.run` passes the hook through; a run never asked to stop is unaffected.
    @Test func aJobThatIsNotStoppedTrainsAsBefore() throws {
        let data = try TrainingFixtures.synthetic(rows: 1_000, numeric: 3, categorical: 1)
        let config = TrainingConfiguration(model: .logistic, learningRate: 0.05, epochs: 3, patience: 0)
        let plain = try TrainingJob(configuration: config).run(on: data)
        let hooked = try TrainingJob(configuration: config).run(on: data, shouldStop: { false })
        #expect(plain.model.network == hooked.model.network)
        #expect(hooked.summary.history.count == 3)
    }
}
