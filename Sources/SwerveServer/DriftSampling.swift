import Foundation
import Synchronization
import SwerveInference
import SwerveProto
import SwerveServing

/// Carries sampled requests off the request path to their versions' drift monitors: a bounded
/// queue (at most `maxQueued` samples and `maxQueuedBytes` of messages; more are dropped and
/// counted, never waited for) and one thread that decodes each request and response, hands them
/// to the monitor, and closes every monitor's windows on time (each second).
final class DriftSampling: Sendable {
    static let maxQueued = 4096
    static let maxQueuedBytes = 64 << 20

    struct Sample: Sendable {
        let model: ServedModel
        let request: [UInt8]
        let response: [UInt8]
        let timeMs: UInt64
    }

    private struct State {
        var queue: [Sample] = []
        var bytes = 0
        var stopped = false
        var started = false
    }

    private let state = Mutex(State())
    private let wake = NSCondition()
    private let monitors: @Sendable () -> [DriftMonitor]

    /// `monitors`: every ready version's monitor, for the windows' clock.
    init(monitors: @escaping @Sendable () -> [DriftMonitor]) {
        self.monitors = monitors
    }

    /// Queues a sampled request and its response (no copy: the arrays are shared) for the
    /// monitor thread, or drops it, counted, when the queue is full.
    func offer(_ model: ServedModel, request: [UInt8], response: [UInt8], timeMs: UInt64) {
        let size = request.count + response.count
        let (accepted, start) = state.withLock { s -> (Bool, Bool) in
            guard !s.stopped, s.queue.count < Self.maxQueued, s.bytes + size <= Self.maxQueuedBytes else { return (false, false) }
            s.queue.append(Sample(model: model, request: request, response: response, timeMs: timeMs))
            s.bytes += size
            let start = !s.started
            s.started = true
            return (true, start)
        }
        guard accepted else {
            model.monitor?.recordDropped()
            return
        }
        if start { startThread() }
        wake.signal()
    }

    private func startThread() {
        let t = Thread { [self] in
            nameCurrentThread("drift-monitor")
            run()
        }
        t.start()
    }

    /// Stops the thread after what is queued (at shutdown).
    func stop() {
        state.withLock { $0.stopped = true }
        wake.signal()
    }

    private func run() {
        var lastTick = UInt64(0)
        while true {
            let (batch, stopped) = state.withLock { s -> ([Sample], Bool) in
                let b = s.queue
                s.queue = []
                s.bytes = 0
                return (b, s.stopped)
            }
            for sample in batch { observe(sample) }
            let now = wallClockMs()
            if now >= lastTick + 1000 {
                for m in monitors() { m.tick(nowMs: now) }
                lastTick = now
            }
            if stopped { return }
            if batch.isEmpty {
                wake.lock()
                _ = wake.wait(until: Date(timeIntervalSinceNow: 1))
                wake.unlock()
            }
        }
    }

    private func observe(_ sample: Sample) {
        let model = sample.model
        guard let monitor = model.monitor else { return }
        guard let (inputs, rows) = Self.inputs(sample.request, model), let outputs = Self.outputs(sample.response, model) else {
            monitor.recordUndecodable()
            return
        }
        monitor.observe(inputs: inputs, rows: rows, outputs: outputs, nowMs: sample.timeMs)
    }

    /// The request's inputs in the model's order, decoded and checked as ModelInfer did.
    static func inputs(_ request: [UInt8], _ model: ServedModel) -> ([TensorValues], Int)? {
        var decoded: ([TensorValues], Int)?
        do {
            try request.withUnsafeBytes { bytes in
                try ModelInferRequest.withView(bytes) { view in
                    let (tensors, rows) = try TensorCoding.inputs(of: view, for: model)
                    decoded = (tensors.map(\.data), model.maxBatchSize > 0 ? rows : 1)
                }
            }
        } catch {
            return nil
        }
        return decoded
    }

    /// The response's outputs as (position among the model's outputs, shape, values).
    static func outputs(_ response: [UInt8], _ model: ServedModel) -> [(index: Int, shape: [Int], values: TensorValues)]? {
        guard let decoded = WireTensors.outputs(ofResponse: response) else { return nil }
        var out: [(index: Int, shape: [Int], values: TensorValues)] = []
        for o in decoded {
            guard let i = model.outputPosition(o.name) else { return nil }
            out.append((i, o.shape, o.values))
        }
        return out
    }
}
