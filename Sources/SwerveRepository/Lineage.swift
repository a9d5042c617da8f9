import Foundation

/// Any JSON value, for the parts of a lineage record whose shape belongs to someone else
/// (a schema, hyperparameters).
public enum LineageJSON: Codable, Sendable, Equatable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([LineageJSON])
    case object([String: LineageJSON])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([LineageJSON].self) { self = .array(a) }
        else { self = .object(try c.decode([String: LineageJSON].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Converts any `Encodable` (a schema type, a hyperparameter struct) into a JSON value.
    public init(encoding value: some Encodable) throws {
        let data = try JSONEncoder().encode(value)
        self = try JSONDecoder().decode(LineageJSON.self, from: data)
    }
}

/// The lineage record of one model version, stored as `<version>/metadata.json`: where the model
/// came from, what it was trained on, how it scored, and where it is in its life.
///
/// Keys are snake_case on disk; the serving side shows them (flattened to strings) in model
/// metadata.
public struct Lineage: Codable, Sendable, Equatable {
    /// Where a version is in its life. Only `serving` is in the config.json version policy.
    public enum Status: String, Codable, Sendable, CaseIterable {
        /// Published, not yet checked against its gates.
        case candidate
        /// Passed its gates; may be promoted. Also what a formerly serving version becomes when a
        /// newer one is promoted over it.
        case validated
        /// Named by the model's version policy.
        case serving
        /// Failed its gates. Rejected candidates are recorded outside the served tree.
        case rejected
        /// Was serving and was rolled back.
        case rolledBack = "rolled_back"
    }

    /// Rows used to train, tune and finally evaluate the model.
    public struct RowCounts: Codable, Sendable, Equatable {
        public var train: Int
        public var validation: Int
        public var holdout: Int
        public init(train: Int, validation: Int = 0, holdout: Int = 0) {
            self.train = train
            self.validation = validation
            self.holdout = holdout
        }
    }

    /// Who or what started the job.
    public struct Origin: Codable, Sendable, Equatable {
        public var user: String
        public var host: String
        public var jobID: String?
        public init(user: String, host: String, jobID: String? = nil) {
            self.user = user
            self.host = host
            self.jobID = jobID
        }

        /// The current process's user and host.
        public static func current(jobID: String? = nil) -> Origin {
            let env = ProcessInfo.processInfo.environment
            return Origin(user: env["USER"] ?? env["LOGNAME"] ?? "unknown", host: ProcessInfo.processInfo.hostName, jobID: jobID)
        }

        enum CodingKeys: String, CodingKey {
            case user, host
            case jobID = "job_id"
        }
    }

    public struct Timestamps: Codable, Sendable, Equatable {
        public var started: Date?
        public var finished: Date?
        /// Set by the publisher.
        public var published: Date?
        public init(started: Date? = nil, finished: Date? = nil, published: Date? = nil) {
            self.started = started
            self.finished = finished
            self.published = published
        }
    }

    /// One status transition, kept so a version's history can be audited.
    public struct StatusChange: Codable, Sendable, Equatable {
        public var from: Status?
        public var to: Status
        public var at: Date
        public var reason: String?
        public init(from: Status?, to: Status, at: Date = Date(), reason: String? = nil) {
            self.from = from
            self.to = to
            self.at = at
            self.reason = reason
        }
    }

    /// The version of Swerve's code recorded in the lineage of versions it trains or publishes.
    public static let currentCodeVersion = "0.1.0"

    /// The model's name in the repository; set by the publisher.
    public var model: String?
    /// The version number; set by the publisher.
    public var version: Int?
    /// "swerve-training" for models trained here, "external" for `swerve publish`.
    public var source: String
    /// Fingerprint of model.onnx; set by the publisher.
    public var modelFingerprint: String?
    /// Fingerprint of the training data (see `ContentFingerprint`), or of the model file for
    /// external models.
    public var dataFingerprint: String?
    public var rowCounts: RowCounts?
    /// The data schema, in whatever JSON shape the trainer uses.
    public var schema: LineageJSON?
    public var hyperparameters: [String: LineageJSON]
    public var seed: UInt64?
    /// Evaluation metrics over the whole holdout, e.g. "accuracy", "log_loss", "auc", "rmse".
    public var metrics: [String: Double]
    /// Metrics per slice ("country=FR" → metrics).
    public var sliceMetrics: [String: [String: Double]]
    /// The version this one was trained from (warm start) or replaces.
    public var parentVersion: Int?
    public var codeVersion: String
    public var origin: Origin
    public var timestamps: Timestamps
    public var status: Status
    public var statusHistory: [StatusChange]
    /// Why a candidate was rejected (gate failures, validation errors); empty otherwise.
    public var rejectionReasons: [String]
    /// Free-form key/values (`swerve publish --metadata k=v`).
    public var extra: [String: String]

    public init(
        source: String = "swerve-training", dataFingerprint: String? = nil, rowCounts: RowCounts? = nil,
        schema: LineageJSON? = nil, hyperparameters: [String: LineageJSON] = [:], seed: UInt64? = nil,
        metrics: [String: Double] = [:], sliceMetrics: [String: [String: Double]] = [:], parentVersion: Int? = nil,
        codeVersion: String = Lineage.currentCodeVersion, origin: Origin = .current(),
        timestamps: Timestamps = Timestamps(), status: Status = .candidate, extra: [String: String] = [:]
    ) {
        self.source = source
        self.dataFingerprint = dataFingerprint
        self.rowCounts = rowCounts
        self.schema = schema
        self.hyperparameters = hyperparameters
        self.seed = seed
        self.metrics = metrics
        self.sliceMetrics = sliceMetrics
        self.parentVersion = parentVersion
        self.codeVersion = codeVersion
        self.origin = origin
        self.timestamps = timestamps
        self.status = status
        self.statusHistory = [StatusChange(from: nil, to: status, at: timestamps.started ?? Date())]
        self.rejectionReasons = []
        self.extra = extra
    }

    /// Moves to `status`, recording the change.
    public mutating func transition(to status: Status, reason: String? = nil, at date: Date = Date()) {
        guard status != self.status else { return }
        statusHistory.append(StatusChange(from: self.status, to: status, at: date, reason: reason))
        self.status = status
    }

    enum CodingKeys: String, CodingKey {
        case model, version, source, schema, hyperparameters, seed, metrics, origin, timestamps, status, extra
        case dataFingerprint = "data_fingerprint"
        case modelFingerprint = "model_fingerprint"
        case rowCounts = "row_counts"
        case sliceMetrics = "slice_metrics"
        case parentVersion = "parent_version"
        case codeVersion = "code_version"
        case statusHistory = "status_history"
        case rejectionReasons = "rejection_reasons"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        version = try c.decodeIfPresent(Int.self, forKey: .version)
        source = try c.decodeIfPresent(String.self, forKey: .source) ?? "unknown"
        dataFingerprint = try c.decodeIfPresent(String.self, forKey: .dataFingerprint)
        modelFingerprint = try c.decodeIfPresent(String.self, forKey: .modelFingerprint)
        rowCounts = try c.decodeIfPresent(RowCounts.self, forKey: .rowCounts)
        schema = try c.decodeIfPresent(LineageJSON.self, forKey: .schema)
        hyperparameters = try c.decodeIfPresent([String: LineageJSON].self, forKey: .hyperparameters) ?? [:]
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        metrics = try c.decodeIfPresent([String: Double].self, forKey: .metrics) ?? [:]
        sliceMetrics = try c.decodeIfPresent([String: [String: Double]].self, forKey: .sliceMetrics) ?? [:]
        parentVersion = try c.decodeIfPresent(Int.self, forKey: .parentVersion)
        codeVersion = try c.decodeIfPresent(String.self, forKey: .codeVersion) ?? "unknown"
        origin = try c.decodeIfPresent(Origin.self, forKey: .origin) ?? Origin(user: "unknown", host: "unknown")
        timestamps = try c.decodeIfPresent(Timestamps.self, forKey: .timestamps) ?? Timestamps()
        status = try c.decodeIfPresent(Status.self, forKey: .status) ?? .candidate
        statusHistory = try c.decodeIfPresent([StatusChange].self, forKey: .statusHistory) ?? []
        rejectionReasons = try c.decodeIfPresent([String].self, forKey: .rejectionReasons) ?? []
        extra = try c.decodeIfPresent([String: String].self, forKey: .extra) ?? [:]
    }

    /// The record as metadata.json bytes.
    public func jsonData() throws -> Data { try RecordJSON.encoder().encode(self) }

    /// Reads a metadata.json record. Missing keys take defaults, so a hand-written record loads.
    public static func decode(_ data: Data) throws -> Lineage { try RecordJSON.decoder().decode(Lineage.self, from: data) }
}
