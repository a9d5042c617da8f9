import SwerveInference
import Testing

@testable import SwerveTransport

/// The connection's stream table against `Dictionary` on the same operations.
@Suite struct StreamTableTests {
    final class Box {
        let n: Int32
        init(_ n: Int32) { self.n = n }
    }

    private func check(_ table: StreamTable<Box>, _ reference: [Int32: Box], probes: [Int32]) {
        #expect(table.count == reference.count)
        #expect(table.isEmpty == reference.isEmpty)
        for k in probes { #expect(table[k] === reference[k], "stream \(k)") }
        #expect(Set(table.allValues.map(\.n)) == Set(reference.values.map(\.n)))
    }

    /// Streams as a client opens them (odd, increasing), closed in random order, through growth
    /// to hundreds open and back down through shrinking.
    @Test func matchesADictionaryThroughGrowthAndShrinking() {
        var rng = SplitMix64(seed: 7)  // seeded: a failure repeats
        var table = StreamTable<Box>()
        var reference: [Int32: Box] = [:]
        var next: Int32 = 1
        var opened: [Int32] = []
        for step in 0..<20_000 {
            // Mostly opening in the first half, mostly closing in the second.
            let openChance = step < 10_000 ? 0.6 : 0.35
            if Double.random(in: 0..<1, using: &rng) < openChance || reference.isEmpty {
                let b = Box(next)
                table[next] = b
                reference[next] = b
                opened.append(next)
                next += 2
            } else {
                let k = reference.keys.randomElement(using: &rng)!
                #expect(table.removeValue(forKey: k) === reference.removeValue(forKey: k))
            }
            if step % 500 == 0 {
                let probes = opened.suffix(300) + [0, -1, next, next + 2, Int32.max]
                check(table, reference, probes: Array(probes))
            }
        }
        check(table, reference, probes: opened)
        // Removing what is not there changes nothing.
        #expect(table.removeValue(forKey: next + 100) == nil)
        #expect(table.removeValue(forKey: 0) == nil)
        check(table, reference, probes: opened)
        table.removeAll()
        #expect(table.isEmpty && table.allValues.isEmpty && table[1] == nil)
    }

    /// Bursts of streams that all close (what a batching client does) resize the table once, not
    /// on every burst; a table grown by thousands of streams shrinks back, to the floor.
    @Test func burstsDoNotResizeAndLargeTablesShrinkToTheFloor() {
        var table = StreamTable<Box>()
        var next: Int32 = 1
        var capacities = Set<Int>()
        for _ in 0..<100 {
            let burst = (0..<16).map { _ in defer { next += 2 }; return next }
            for k in burst { table[k] = Box(k) }
            for k in burst { table[k] = nil }
            capacities.insert(table.capacity)
        }
        #expect(capacities == [32] && table.isEmpty)
        let many = (0..<3_000).map { Int32(1 + 2 * $0) + next }
        for k in many { table[k] = Box(k) }
        #expect(table.capacity == 8_192)
        for k in many { table[k] = nil }
        #expect(table.capacity == 256 && table.isEmpty)
    }

    /// IDs a hostile client might pick to collide in the low bits (spaced by large powers of two)
    /// still all resolve, and replacing a value keeps one entry.
    @Test func spacedIDsAndReplacement() {
        var table = StreamTable<Box>()
        var reference: [Int32: Box] = [:]
        let ids = (0..<200).map { Int32(1 + $0 * 65_536) }
        for k in ids {
            let b = Box(k)
            table[k] = b
            reference[k] = b
        }
        check(table, reference, probes: ids)
        let replacement = Box(ids[3])
        table[ids[3]] = replacement
        reference[ids[3]] = replacement
        check(table, reference, probes: ids)
        for k in ids.shuffled() {
            table[k] = nil
            reference[k] = nil
            #expect(table[k] == nil)
        }
        check(table, reference, probes: ids)
    }
}
