import Foundation
import SwerveRepository

/// Appends examples to one model's `ExampleLog` all or nothing, and answers a retry of an append
/// that already landed (same idempotency key) with its original sequence numbers instead of
/// writing it twice.
///
/// The key is written with the append itself, on its first example (`appendKey`,
/// `appendCount`), so it is durable exactly when the append is: a crash before the append is
/// durable loses the key with it and the retry writes it; a crash after answers the retry from
/// the log. At most `maxKeys` of the latest keys are remembered; the index is read from the log
/// on the first keyed append after opening, so after a restart only keys whose appends are still
/// in the log (not in segments a checkpointed consumer let go) are known.
public final class ExampleAppender: @unchecked Sendable {
    public static let maxKeyBytes = 128
    public static let maxKeys = 100_000

    public struct Result: Sendable, Equatable {
        public var firstSequence: UInt64
        public var count: Int
        /// True when the key had landed before and nothing was written.
        public var replayed: Bool
    }

    public let log: ExampleLog
    private let lock = NSLock()
    // Guarded by `lock`: nil until a keyed append needs it.
    private var index: [String: (first: UInt64, count: Int)]?
    /// Keys in the order they landed, for evicting the oldest past `maxKeys`.
    private var order: [String] = []
    private var orderStart = 0

    public init(log: ExampleLog) { self.log = log }

    /// Appends `examples` as one unit; with a non-empty `key`, a key seen before is answered from
    /// the index. Throws `.invalidArgument` for an empty append, an overlong key, or a key reused
    /// for an append of a different size.
    public func append(_ examples: [LabelledExample], key: String = "") throws -> Result {
        guard !examples.isEmpty else { throw StorageError(.invalidArgument, "no examples") }
        guard key.utf8.count <= Self.maxKeyBytes else {
            throw StorageError(.invalidArgument, "idempotency key of \(key.utf8.count) bytes exceeds \(Self.maxKeyBytes)")
        }
        lock.lock()
        defer { lock.unlock() }
        if !key.isEmpty {
            if index == nil { try loadIndex() }
            if let seen = index![key] {
                guard seen.count == examples.count else {
                    throw StorageError(.invalidArgument, "idempotency key '\(key)' was used for an append of \(seen.count) examples, not \(examples.count)")
                }
                return Result(firstSequence: seen.first, count: seen.count, replayed: true)
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var payloads: [[UInt8]] = []
        payloads.reserveCapacity(examples.count)
        for (i, example) in examples.enumerated() {
            var e = example
            e.appendKey = nil
            e.appendCount = nil
            if i == 0 && !key.isEmpty {
                e.appendKey = key
                e.appendCount = examples.count
            }
            payloads.append(Array(try encoder.encode(e)))
        }
        let first = try log.append(batch: payloads)
        if !key.isEmpty { remember(key, first: first, count: examples.count) }
        return Result(firstSequence: first, count: examples.count, replayed: false)
    }

    private func remember(_ key: String, first: UInt64, count: Int) {
        index![key] = (first, count)
        order.append(key)
        while order.count - orderStart > Self.maxKeys {
            index!.removeValue(forKey: order[orderStart])
            orderStart += 1
        }
        if orderStart > Self.maxKeys {  // compact now and then
            order.removeFirst(orderStart)
            orderStart = 0
        }
    }

    /// Reads the keys of the appends in the log. Only payloads that mention the key field are
    /// decoded.
    private func loadIndex() throws {
        index = [:]
        order = []
        orderStart = 0
        let marker = Array("\"appendKey\"".utf8)
        let decoder = JSONDecoder()
        try log.forEachRecord { record in
            guard Self.contains(record.payload, marker),
                  let example = try? decoder.decode(LabelledExample.self, from: Data(record.payload)),
                  let key = example.appendKey, let count = example.appendCount
            else { return }
            remember(key, first: record.sequence, count: count)
        }
    }

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        haystack.firstRange(of: needle) != nil
    }
}
