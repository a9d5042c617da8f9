import SwerveInference

/// Which model to train.
public enum ModelKind: String, Sendable, Codable, CaseIterable {
    /// Least-squares linear regression (regression labels).
    case linear
    /// Binary logistic regression (two classes).
    case logistic
    /// Multinomial (softmax) logistic regression (two or more classes).
    case softmax
    /// A multilayer perceptron: a classifier for classification labels (sigmoid output for two
    /// classes, softmax for more, as scikit-learn's MLPClassifier), a regressor for regression labels.
    case mlp
    /// Histogram gradient-boosted trees (classification): see `GBDTParameters`.
    case gbdt
}

/// The update rule.
public enum OptimizerKind: String, Sendable, Codable, CaseIterable {
    /// Stochastic gradient descent with (heavy-ball) momentum.
    case sgd
    /// Adam (Kingma and Ba), β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    case adam
}

/// How to train. The objective is the mean loss over the training rows plus `l2 / 2 · ‖W‖²` over
/// the weights (not the biases). scikit-learn's LogisticRegression(C) minimizes
/// `C · Σ loss + ½‖W‖²`, the same optimum when `C = 1 / (l2 · n_train)`; its MLP's `alpha` is
/// applied per mini-batch as `alpha / (2 · batch) · ‖W‖²`, i.e. `l2 = alpha / batch_size`.
public struct TrainingConfiguration: Sendable, Codable, Equatable {
    public var model: ModelKind
    /// Hidden layer widths (MLP only).
    public var hiddenLayers: [Int]
    public var activation: Activation
    public var optimizer: OptimizerKind
    public var learningRate: Double
    /// SGD momentum.
    public var momentum: Double
    public var l2: Double
    /// The most passes over the training rows.
    public var epochs: Int
    public var batchSize: Int
    /// Stop after this many epochs without a better validation loss, keeping the best epoch's
    /// weights. 0 turns early stopping off: all epochs run and the last weights are kept (what a
    /// convex model wants to reach the regularized optimum); validation is still reported.
    public var patience: Int
    /// Gradient shards per mini-batch, each computed on its own thread. Results are bit-identical
    /// for the same data, seed and thread count.
    public var threads: Int
    /// Seeds the initial weights and the per-epoch shuffles.
    public var seed: UInt64
    /// Gradient boosting's trees, depth and leaf size (`gbdt` only; nil means the defaults).
    public var gbdt: GBDTParameters?

    public init(
        model: ModelKind, hiddenLayers: [Int] = [64], activation: Activation = .relu,
        optimizer: OptimizerKind = .adam, learningRate: Double? = nil, momentum: Double = 0.9,
        l2: Double = 1e-4, epochs: Int = 50, batchSize: Int = 32, patience: Int = 5, threads: Int = 1,
        seed: UInt64 = 42, gbdt: GBDTParameters? = nil
    ) {
        self.model = model
        self.hiddenLayers = hiddenLayers
        self.activation = activation
        self.optimizer = optimizer
        self.learningRate = learningRate ?? (optimizer == .adam ? 0.001 : 0.01)
        self.momentum = momentum
        self.l2 = l2
        self.epochs = epochs
        self.batchSize = batchSize
        self.patience = patience
        self.threads = threads
        self.seed = seed
        self.gbdt = gbdt
    }

    func validate() throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw TrainingError(.invalidConfiguration, message) }
        }
        try check(epochs >= 1, "epochs must be at least 1")
        try check(batchSize >= 1, "the batch size must be at least 1")
        try check(threads >= 1 && threads <= 256, "threads must be between 1 and 256")
        try check(learningRate > 0 && learningRate.isFinite, "the learning rate must be positive")
        try check(l2 >= 0 && l2.isFinite, "l2 must be ≥ 0")
        try check(patience >= 0, "patience must be ≥ 0")
        try check(momentum >= 0 && momentum < 1, "momentum must be in [0, 1)")
        // The class count is not known here: the trainer checks the node bound again with it.
        if model == .gbdt { try (gbdt ?? GBDTParameters()).validate(outputs: 1) }
        if model == .mlp { try check(!hiddenLayers.isEmpty && hiddenLayers.allSatisfy { $0 >= 1 }, "an MLP needs hidden layers of width ≥ 1") }
    }
}

/// One epoch's report.
public struct EpochProgress: Sendable, Codable, Equatable, CustomStringConvertible {
    public var epoch: Int
    /// Mean data loss over the epoch's mini-batches (log loss, or ½ squared error for regression).
    public var trainLoss: Double
    /// Validation log loss (classification) or RMSE (regression); nil without validation data.
    public var validationLoss: Double?
    /// Validation accuracy (classification).
    public var validationAccuracy: Double?
    /// Training rows per second this epoch (forward + backward + update).
    public var examplesPerSecond: Double
    /// Whether this epoch is the best so far (its weights are kept).
    public var improved: Bool
    /// Gradient boosting: iterations (trees per output) done so far; nil for networks.
    public var trees: Int?
    /// Gradient boosting: seconds since training started.
    public var elapsedSeconds: Double?

    public var description: String {
        if let trees {
            var s = "trees \(trees): train loss \(format(trainLoss))"
            if let v = validationLoss { s += ", validation log loss \(format(v))" }
            if let a = validationAccuracy { s += ", validation accuracy \(format(a))" }
            s += ", elapsed \(format(elapsedSeconds ?? 0)) s"
            return s
        }
        var s = "epoch \(epoch): train loss \(format(trainLoss))"
        if let v = validationLoss { s += ", validation \(validationAccuracy == nil ? "rmse" : "log loss") \(format(v))" }
        if let a = validationAccuracy { s += ", validation accuracy \(format(a))" }
        s += ", \(Int(examplesPerSecond.rounded())) examples/s"
        if improved { s += " *" }
        return s
    }
}

func format(_ x: Double) -> String {
    guard x.isFinite else { return "\(x)" }
    let scaled = (x * 10000).rounded() / 10000
    return "\(scaled)"
}

/// Trains networks with mini-batch gradient descent, data-parallel within each mini-batch.
///
/// Each mini-batch is cut into `threads` contiguous shards; every shard's gradient is computed on
/// its own thread into its own buffer, and the shards are summed in shard order, so a given data
/// set, seed and thread count always produce bit-identical weights (a different thread count
/// changes only the order of floating-point additions).
public struct Trainer: Sendable {
    public var configuration: TrainingConfiguration

    public init(_ configuration: TrainingConfiguration) { self.configuration = configuration }

    /// Mini-batches between two polls of `shouldStop` within an epoch.
    public static let stopCheckInterval = 16

    /// Trains on `train`, early-stopping on `validation` (when non-empty).
    ///
    /// `warmStart` continues from a previous model (same kind, features, classes and architecture):
    /// its encoder and weights are kept, so new data is standardized as the old was and new
    /// categories encode as zeros until a model is trained from scratch. `progress` is called after
    /// every epoch.
    ///
    /// `shouldStop` (pass it by label, after `progress`) is polled before every epoch and every `stopCheckInterval` mini-batches; when
    /// it returns true training ends by throwing a `TrainingError` with code `.cancelled` (the
    /// partial weights are discarded).
    public func train(
        on train: Dataset, validation: Dataset? = nil, warmStart: TrainedModel? = nil,
        progress: (EpochProgress) -> Void = { _ in },
        shouldStop: @Sendable () -> Bool = { false }
    ) throws -> TrainedModel {
        let config = configuration
        try config.validate()
        guard train.rowCount > 0 else { throw TrainingError(.invalidConfiguration, "the training split has no rows") }
        if config.model == .gbdt {
            return try trainGradientBoosting(on: train, validation: validation, warmStart: warmStart, progress: progress, shouldStop: shouldStop)
        }
        let task = train.schema.task
        let classNames = train.classNames
        let head: OutputHead
        switch (config.model, task) {
        case (.linear, .regression), (.mlp, .regression): head = .identity
        case (.logistic, .classification):
            guard classNames.count == 2 else {
                throw TrainingError(.invalidConfiguration, "logistic regression is binary but the label has \(classNames.count) classes; use softmax")
            }
            head = .sigmoid
        case (.softmax, .classification): head = .softmax
        case (.mlp, .classification): head = classNames.count == 2 ? .sigmoid : .softmax
        default:
            throw TrainingError(.invalidConfiguration, "a \(config.model.rawValue) model cannot learn a \(task.rawValue) label")
        }

        let encoder: FeatureEncoder
        var network: Network
        if let warm = warmStart {
            guard warm.kind == config.model, warm.classNames == classNames, warm.labelName == train.labelName,
                  warm.network.head == head,
                  config.model != .mlp || (warm.network.layerSizes.dropFirst().dropLast().elementsEqual(config.hiddenLayers) && warm.network.activation == config.activation)
            else {
                throw TrainingError(.invalidConfiguration, "cannot warm-start: the previous model has a different kind, label, classes or architecture")
            }
            encoder = warm.encoder
            network = warm.network
        } else {
            encoder = FeatureEncoder(fitting: train)
            let outputs = head == .softmax ? classNames.count : 1
            let hidden = config.model == .mlp ? config.hiddenLayers : []
            network = Network(layerSizes: [encoder.width] + hidden + [outputs], activation: config.activation, head: head)
            if config.model == .mlp { network.initializeGlorot(seed: config.seed) }
        }
        guard encoder.width > 0 else { throw TrainingError(.invalidConfiguration, "there are no features to train on") }

        let x = try encoder.encode(train)
        let targets: [Double]
        switch train.labels {
        case .regression(let v): targets = v
        case .classes(let i, _): targets = i.map(Double.init)
        }
        let validationRows = (validation?.rowCount ?? 0) > 0 ? validation : nil
        let xValidation = try validationRows.map { try encoder.encode($0) }

        var optimizer = Optimizer(config: config, count: network.parameters.count)
        let mask = network.weightMask
        let n = train.rowCount, width = encoder.width
        let shards = min(config.threads, config.batchSize)
        let shardCapacity = (min(config.batchSize, n) + shards - 1) / shards
        let workspaces = (0..<shards).map { _ in Workspace(network: network, capacity: shardCapacity) }
        var order = Array(0..<n)
        var rng = SplitMix64(seed: config.seed ^ 0x5DEE_CE66_D1CE_5EED)
        var gradient = [Double](repeating: 0, count: network.parameters.count)
        var history: [EpochProgress] = []
        var best: (loss: Double, network: Network, epoch: Int)? = nil
        var sinceBest = 0
        let clock = ContinuousClock()

        func stopIfAsked(epoch: Int, batch: Int) throws {
            guard shouldStop() else { return }
            throw TrainingError(.cancelled, batch == 0
                ? "training stopped before epoch \(epoch)"
                : "training stopped in epoch \(epoch) after \(batch) mini-batches")
        }

        for epoch in 1...config.epochs {
            try stopIfAsked(epoch: epoch, batch: 0)
            let started = clock.now
            // Fisher–Yates with our own generator: the same order on every platform and Swift version.
            for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            var epochLoss = 0.0
            var batchStart = 0
            var batchIndex = 0
            while batchStart < n {
                if batchIndex > 0, batchIndex % Self.stopCheckInterval == 0 { try stopIfAsked(epoch: epoch, batch: batchIndex) }
                batchIndex += 1
                let batch = Array(order[batchStart..<min(n, batchStart + config.batchSize)])
                batchStart += batch.count
                let per = (batch.count + shards - 1) / shards
                let active = (batch.count + per - 1) / per
                x.withUnsafeBufferPointer { xp in
                    targets.withUnsafeBufferPointer { tp in
                        let xBase = SendablePointer(xp.baseAddress!), tBase = SendablePointer(tp.baseAddress!)
                        let net = network
                        parallelFor(active) { s in
                            let rows = Array(batch[(s * per)..<min(batch.count, (s + 1) * per)])
                            let ws = workspaces[s]
                            ws.loadRows(from: xBase.pointer, rows: rows, width: width)
                            let shardTargets = rows.map { tBase.pointer[$0] }
                            shardTargets.withUnsafeBufferPointer { ws.accumulateGradient(net, count: rows.count, targets: $0.baseAddress!) }
                        }
                    }
                }
                // Sum the shards in a fixed order, average, add the L2 term.
                let scale = 1 / Double(batch.count)
                gradient.withUnsafeMutableBufferPointer { g in
                    g.update(repeating: 0)
                    for s in 0..<active {
                        let shard = workspaces[s].gradient
                        for i in 0..<g.count { g[i] += shard[i] }
                        epochLoss += workspaces[s].loss
                    }
                    for i in 0..<g.count { g[i] = g[i] * scale + config.l2 * mask[i] * network.parameters[i] }
                }
                optimizer.step(&network.parameters, gradient: gradient)
            }
            let elapsed = clock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            var report = EpochProgress(
                epoch: epoch, trainLoss: epochLoss / Double(n), validationLoss: nil, validationAccuracy: nil,
                examplesPerSecond: Double(n) / max(seconds, 1e-9), improved: false)
            guard report.trainLoss.isFinite else {
                throw TrainingError(.invalidConfiguration, "training diverged at epoch \(epoch) (loss \(report.trainLoss)); lower the learning rate")
            }
            if let validation = validationRows, let xv = xValidation {
                let predictions = Predictions(
                    task: task, classNames: classNames,
                    values: network.predict(xv, rows: validation.rowCount, threads: config.threads))
                let metrics = Metrics(predictions, labels: validation.labels)
                report.validationLoss = task == .classification ? metrics.logLoss : metrics.rmse
                report.validationAccuracy = metrics.accuracy
                if config.patience == 0 {
                    best = (report.validationLoss ?? 0, network, epoch)
                    report.improved = true
                } else if let loss = report.validationLoss, best == nil || loss < best!.loss {
                    best = (loss, network, epoch)
                    report.improved = true
                    sinceBest = 0
                } else {
                    sinceBest += 1
                }
            } else {
                report.improved = true
                best = (report.trainLoss, network, epoch)
            }
            history.append(report)
            progress(report)
            if validationRows != nil, config.patience > 0, sinceBest >= config.patience { break }
        }
        let kept = best ?? (0, network, config.epochs)
        return TrainedModel(
            kind: config.model, labelName: train.labelName, classNames: classNames, encoder: encoder,
            network: kept.network, configuration: config, history: history, bestEpoch: kept.epoch,
            trainedRows: n + (warmStart?.trainedRows ?? 0))
    }
}

/// Per-parameter optimizer state.
struct Optimizer {
    let config: TrainingConfiguration
    var first: [Double]
    var second: [Double]
    var steps = 0

    init(config: TrainingConfiguration, count: Int) {
        self.config = config
        first = [Double](repeating: 0, count: count)
        second = config.optimizer == .adam ? [Double](repeating: 0, count: count) : []
    }

    mutating func step(_ parameters: inout [Double], gradient: [Double]) {
        steps += 1
        let lr = config.learningRate
        switch config.optimizer {
        case .sgd:
            let mu = config.momentum
            for i in parameters.indices {
                first[i] = mu * first[i] - lr * gradient[i]
                parameters[i] += first[i]
            }
        case .adam:
            let b1 = 0.9, b2 = 0.999, eps = 1e-8
            let c1 = 1 - pow(b1, Double(steps)), c2 = 1 - pow(b2, Double(steps))
            let rate = lr * c2.squareRoot() / c1
            for i in parameters.indices {
                let g = gradient[i]
                first[i] = b1 * first[i] + (1 - b1) * g
                second[i] = b2 * second[i] + (1 - b2) * g * g
                parameters[i] -= rate * first[i] / (second[i].squareRoot() + eps)
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
