import Foundation
@testable import SwerveTraining
import SwerveTesting
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

    /// What the training thread and the cancelling thread saw, each stamped on its own thread.
    final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private var _error: (any Error)?
        private var _returnedModel = false
        private var _cancelledAt: ContinuousClock.Instant?
        private var _returnedAt: ContinuousClock.Instant?
        private var _threads: Set<ObjectIdentifier> = []

        func returned(error: (any Error)?, model: Bool) {
            lock.lock(); _error = error; _returnedModel = model; _returnedAt = .now; lock.unlock()
        }
        func cancelled() { lock.lock(); _cancelledAt = .now; lock.unlock() }
        /// Records the thread a progress report came from.
        func reported() { lock.lock(); _threads.insert(ObjectIdentifier(Thread.current)); lock.unlock() }

        var error: (any Error)? { lock.lock(); defer { lock.unlock() }; return _error }
        var returnedModel: Bool { lock.lock(); defer { lock.unlock() }; return _returnedModel }
        var reportingThreads: Set<ObjectIdentifier> { lock.lock(); defer { lock.unlock() }; return _threads }
        /// From the stop request to train() returning, if both happened.
        var latency: Duration? {
            lock.lock(); defer { lock.unlock() }
            guard let c = _cancelledAt, let r = _returnedAt else { return nil }
            return r - c
        }
    }

    /// A job that would run for minutes (10 000 epochs) is stopped after its first epoch: the
    /// training thread returns a `.cancelled` error within a bounded time and its epoch counter
    /// stops growing.
    ///
    /// The stop comes from a thread of its own that wakes on the first epoch's report, and both
    /// moments are stamped on the threads where they happen: the test's own task only waits for the
    /// end, so how soon the (shared) test executor gets round to it cannot stretch the figures.
    @Test func aLongRunStopsSoonAfterItsFirstEpoch() async throws {
        let data = try TrainingFixtures.synthetic(rows: 20_000, numeric: 8, categorical: 1)
        let split = try data.split(validation: 0.1, holdout: 0.1, seed: 3)
        let config = TrainingConfiguration(model: .mlp, hiddenLayers: [32], epochs: 10_000, batchSize: 32, patience: 0, threads: 2)
        let epochs = LockedCounter()
        let firstEpoch = DispatchSemaphore(value: 0)
        let stop = Flag()
        let outcome = Outcome()
        let training = Thread {
            do {
                _ = try Trainer(config).train(
                    on: split.train, validation: split.validation,
                    progress: { _ in
                        outcome.reported()
                        if epochs.increment() == 1 { firstEpoch.signal() }
                    },
                    shouldStop: { stop.isSet })
                outcome.returned(error: nil, model: true)
            } catch {
                outcome.returned(error: error, model: false)
            }
        }
        let canceller = Thread {
            guard firstEpoch.wait(timeout: .now() + 120) == .success else { return }
            outcome.cancelled()
            stop.raise()
        }
        canceller.start()
        training.start()

        try await waitUntil("the training thread ends after its first epoch", timeout: .seconds(150)) { training.isFinished }
        #expect(epochs.value >= 1, "the first epoch was never reported")
        // Bounded: at most the rest of the current stop-check interval (16 mini-batches) plus one validation pass.
        let latency = try #require(outcome.latency, "train() returned without the stop being raised")
        #expect(latency < .seconds(5))
        // Every report came on the training thread itself, and that thread has ended: the epoch
        // count cannot grow any more (no report can come from anywhere after train returned).
        #expect(outcome.reportingThreads == [ObjectIdentifier(training)], "progress was reported from a thread other than the one training")
        #expect(epochs.value <= 2)
        #expect(!outcome.returnedModel)
        #expect((outcome.error as? TrainingError)?.code == .cancelled)
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
