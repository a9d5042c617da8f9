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

    final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private var error: (any Error)?
        private var returnedModel = false
        func set(error: (any Error)?, returnedModel: Bool) {
            lock.lock(); self.error = error; self.returnedModel = returnedModel; lock.unlock()
        }
        var value: (error: (any Error)?, returnedModel: Bool) { lock.lock(); defer { lock.unlock() }; return (error, returnedModel) }
    }

    /// The threads progress reports came from.
    final class Reporters: @unchecked Sendable {
        private let lock = NSLock()
        private var threads: Set<ObjectIdentifier> = []
        func record() { lock.lock(); threads.insert(ObjectIdentifier(Thread.current)); lock.unlock() }
        var all: Set<ObjectIdentifier> { lock.lock(); defer { lock.unlock() }; return threads }
    }

    /// A job that would run for minutes (10 000 epochs) is stopped after its first epoch: the
    /// training thread returns a `.cancelled` error within a bounded time and its epoch counter
    /// stops growing.
    @Test func aLongRunStopsSoonAfterItsFirstEpoch() async throws {
        let data = try TrainingFixtures.synthetic(rows: 20_000, numeric: 8, categorical: 1)
        let split = try data.split(validation: 0.1, holdout: 0.1, seed: 3)
        let config = TrainingConfiguration(model: .mlp, hiddenLayers: [32], epochs: 10_000, batchSize: 32, patience: 0, threads: 2)
        let epochs = LockedCounter()
        let reporters = Reporters()
        let stop = Flag()
        let outcome = Outcome()
        let thread = Thread {
            do {
                _ = try Trainer(config).train(on: split.train, validation: split.validation,
                                              progress: { _ in reporters.record(); _ = epochs.increment() }, shouldStop: { stop.isSet })
                outcome.set(error: nil, returnedModel: true)
            } catch {
                outcome.set(error: error, returnedModel: false)
            }
        }
        thread.start()

        try await waitUntil("the first epoch is reported", timeout: .seconds(120)) { epochs.value >= 1 }
        let clock = ContinuousClock()
        let cancelled = clock.now
        stop.raise()
        // Bounded: at most the rest of the current stop-check interval (16 mini-batches) plus one validation pass.
        try await waitUntil("the training thread ends after the cancellation", timeout: .seconds(10)) { thread.isFinished }
        let latency = clock.now - cancelled
        // Every report came on the training thread itself, and that thread has ended: the epoch
        // count cannot grow any more (no report can come from anywhere after train returned).
        #expect(reporters.all == [ObjectIdentifier(thread)], "progress was reported from a thread other than the one training")
        #expect(epochs.value <= 2)
        let (error, returnedModel) = outcome.value
        #expect(!returnedModel)
        #expect((error as? TrainingError)?.code == .cancelled)
        #expect(latency < .seconds(5))
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
