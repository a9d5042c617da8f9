import CNGHTTP2
import Testing

@testable import SwerveTransport

/// The block pool nghttp2 allocates from (shim.h): blocks come back for reuse, contents survive a
/// growing realloc, calloc zeroes, large blocks bypass the pool, and what it keeps is bounded.
@Suite struct H2PoolTests {
    @Test func freedBlocksAreReusedAndWhatIsKeptIsBounded() throws {
        let pool = try #require(swerve_h2_pool_new())
        defer { swerve_h2_pool_destroy(pool) }
        var mem = swerve_h2_pool_mem(pool)
        let a = try #require(mem.malloc(100, mem.mem_user_data))
        mem.free(a, mem.mem_user_data)
        #expect(pool.pointee.cached_bytes == 128)
        let b = try #require(mem.malloc(90, mem.mem_user_data))
        #expect(b == a, "the freed block of the same class comes back")
        #expect(pool.pointee.reused == 1 && pool.pointee.fresh == 1 && pool.pointee.cached_bytes == 0)
        mem.free(b, mem.mem_user_data)

        // Many frees: the pool keeps at most 32 KiB and frees the rest.
        let blocks = (0..<200).map { _ in mem.malloc(1000, mem.mem_user_data)! }
        for p in blocks { mem.free(p, mem.mem_user_data) }
        #expect(pool.pointee.cached_bytes <= 32 * 1024 && pool.pointee.cached_bytes > 16 * 1024)

        // Large blocks go to malloc and back, not into the pool.
        let before = pool.pointee.cached_bytes
        let large = try #require(mem.malloc(100_000, mem.mem_user_data))
        large.storeBytes(of: 7, toByteOffset: 99_999, as: UInt8.self)
        mem.free(large, mem.mem_user_data)
        #expect(pool.pointee.cached_bytes == before)
        mem.free(nil, mem.mem_user_data)
        _ = mem
    }

    @Test func reallocKeepsContentsAndCallocZeroes() throws {
        let pool = try #require(swerve_h2_pool_new())
        defer { swerve_h2_pool_destroy(pool) }
        let mem = swerve_h2_pool_mem(pool)
        var p = try #require(mem.malloc(10, mem.mem_user_data))
        for i in 0..<10 { p.storeBytes(of: UInt8(i + 1), toByteOffset: i, as: UInt8.self) }
        // Within the block's class: the same block.
        #expect(mem.realloc(p, 40, mem.mem_user_data) == p)
        // Across classes and to a large block: the contents move along.
        for size in [300, 5000, 200_000] {
            p = try #require(mem.realloc(p, size, mem.mem_user_data))
            #expect((0..<10).allSatisfy { p.load(fromByteOffset: $0, as: UInt8.self) == UInt8($0 + 1) }, "after realloc to \(size)")
        }
        #expect(mem.realloc(p, 0, mem.mem_user_data) == nil, "realloc to 0 frees")
        let fresh = try #require(mem.realloc(nil, 64, mem.mem_user_data), "realloc of nil allocates")
        mem.free(fresh, mem.mem_user_data)

        // calloc zeroes a reused block, and refuses a size that overflows.
        let dirty = try #require(mem.malloc(200, mem.mem_user_data))
        dirty.initializeMemory(as: UInt8.self, repeating: 0xAB, count: 200)
        mem.free(dirty, mem.mem_user_data)
        let zeroed = try #require(mem.calloc(20, 10, mem.mem_user_data))
        #expect(zeroed == dirty)
        #expect((0..<200).allSatisfy { zeroed.load(fromByteOffset: $0, as: UInt8.self) == 0 })
        mem.free(zeroed, mem.mem_user_data)
        #expect(mem.calloc(Int.max, 4, mem.mem_user_data) == nil)
    }
}
