import Testing
import SwerveInference
@testable import SwerveServing

@Suite struct Hash64Tests {
    /// Reference values from libxxhash 0.8.1 (XXH64), covering the <4, 4..7, 8..31 and >=32 byte paths.
    @Test func matchesReferenceXXH64() {
        #expect(Hash64.xxh64([], seed: 0) == 0xEF46_DB37_51D8_E999)
        #expect(Hash64.xxh64(Array("a".utf8), seed: 0) == 0xD24E_C4F1_A98C_6E5B)
        #expect(Hash64.xxh64(Array("abc".utf8), seed: 0) == 0x44BC_2CF5_AD77_0999)
        #expect(Hash64.xxh64(Array("Nobody inspects the spammish repetition".utf8), seed: 0) == 0xFBCE_A83C_8A37_8BF1)
        #expect(Hash64.xxh64((0..<100).map { UInt8($0) }, seed: 0x9E37_79B9_7F4A_7C15) == 0x3B97_D91E_BA03_E785)
        #expect(Hash64.xxh64((0..<37).map { UInt8($0) }, seed: 1) == 0x31FE_76EB_4FF1_CF74)
    }
}

@Suite struct RequestKeyTests {
    func key(model: String = "m", version: Int = 3, outputs: [String] = ["a", "b"],
             inputs: [(name: String, tensor: Tensor)]? = nil) -> RequestKey {
        let defaultInputs: [(name: String, tensor: Tensor)] = [
            ("x", Tensor(shape: [2, 2], data: .fp32([1, 2, 3, 4]))),
            ("s", Tensor(shape: [2], data: .bytes([Array("hi".utf8), []]))),
        ]
        return RequestKey(model: model, version: version, outputs: outputs, inputs: inputs ?? defaultInputs)
    }

    @Test func equalRequestsGiveEqualKeys() {
        let a = key(), b = key()
        #expect(a == b)
        #expect(a.hash == b.hash)
        #expect(a.hashValue == b.hashValue)
        #expect(a.bytes == b.bytes)
    }

    @Test func inputOrderDoesNotMatter() {
        let x = Tensor(shape: [1], data: .int64([7]))
        let y = Tensor(shape: [1], data: .int64([8]))
        let a = key(inputs: [("x", x), ("y", y)])
        let b = key(inputs: [("y", y), ("x", x)])
        #expect(a == b)
        let parallel = RequestKey(model: "m", version: 3, outputs: ["a", "b"], inputNames: ["y", "x"], inputs: [y, x])
        #expect(parallel == a)
        let swapped = RequestKey(model: "m", version: 3, outputs: ["a", "b"], inputNames: ["x", "y"], inputs: [y, x])
        #expect(swapped != a)
    }

    @Test func everyPartOfTheRequestCounts() {
        let base = key()
        let x = Tensor(shape: [2, 2], data: .fp32([1, 2, 3, 4]))
        let s = Tensor(shape: [2], data: .bytes([Array("hi".utf8), []]))
        let variants: [(String, RequestKey)] = [
            ("model", key(model: "n")),
            ("version", key(version: 4)),
            ("output order", key(outputs: ["b", "a"])),
            ("output subset", key(outputs: ["a"])),
            ("input name", key(inputs: [("x2", x), ("s", s)])),
            ("datatype", key(inputs: [("x", Tensor(shape: [2, 2], data: .int32([1, 2, 3, 4]))), ("s", s)])),
            ("shape", key(inputs: [("x", Tensor(shape: [4, 1], data: .fp32([1, 2, 3, 4]))), ("s", s)])),
            ("bytes", key(inputs: [("x", Tensor(shape: [2, 2], data: .fp32([1, 2, 3, 5]))), ("s", s)])),
            ("string bytes", key(inputs: [("x", x), ("s", Tensor(shape: [2], data: .bytes([Array("hi".utf8), [0]])))])),
            // BYTES elements are length-prefixed: "hi" + "" must differ from "h" + "i".
            ("string split", key(inputs: [("x", x), ("s", Tensor(shape: [2], data: .bytes([Array("h".utf8), Array("i".utf8)])))])),
            ("missing input", key(inputs: [("x", x)])),
        ]
        for (what, k) in variants {
            #expect(k != base, "changing the \(what) must change the key")
        }
        // Bytes, not values: -0.0 and 0.0 are different requests (a model may tell them apart).
        let zero = key(inputs: [("x", Tensor(shape: [1], data: .fp32([0])))])
        let negativeZero = key(inputs: [("x", Tensor(shape: [1], data: .fp32([-0.0])))])
        #expect(zero != negativeZero)
        // Names and outputs are length-prefixed too: model "ab" + output "c" differs from "a" + "bc".
        #expect(key(model: "ab", outputs: ["c"]) != key(model: "a", outputs: ["bc"]))
    }

    @Test func keyBytesAreTheRawLittleEndianLayout() {
        let t = Tensor(shape: [3], data: .int64([1, -2, 300]))
        let k = RequestKey(model: "m", version: 1, outputs: [], inputs: [("x", t)])
        // The key ends with the tensor's raw bytes, preceded by their count.
        let raw = t.data.rawBytes
        #expect(Array(k.bytes.suffix(raw.count)) == raw)
        let s = Tensor(shape: [2], data: .bytes([Array("ab".utf8), Array("c".utf8)]))
        let ks = RequestKey(model: "m", version: 1, outputs: [], inputs: [("s", s)])
        #expect(Array(ks.bytes.suffix(s.data.rawBytes.count)) == s.data.rawBytes)
        #expect(k.byteCount == k.bytes.count)
    }

    @Test func forcedHashCollisionIsNotAHit() {
        let a = RequestKey(uncheckedBytes: [1, 2, 3], hash: 42)
        let b = RequestKey(uncheckedBytes: [1, 2, 4], hash: 42)
        #expect(a.hashValue == b.hashValue)
        #expect(a != b)
        for policy in CachePolicy.allCases {
            let cache = ResponseCache(budget: 1 << 20, policy: policy)
            cache.put(a, PathsFixtures.value(1))
            #expect(cache.get(b) == nil, "\(policy): a colliding key must miss")
            #expect(cache.get(a)?.tensors == PathsFixtures.value(1))
            // Both can live side by side.
            cache.put(b, PathsFixtures.value(2))
            #expect(cache.get(a)?.tensors == PathsFixtures.value(1))
            #expect(cache.get(b)?.tensors == PathsFixtures.value(2))
        }
        let coalescer = InFlightCoalescer<RequestKey, Int, ServingError>()
        guard case .leader = coalescer.join(a, completion: { _ in }) else { Issue.record("first join must lead"); return }
        guard case .leader = coalescer.join(b, completion: { _ in }) else { Issue.record("a colliding key must not coalesce"); return }
    }
}
