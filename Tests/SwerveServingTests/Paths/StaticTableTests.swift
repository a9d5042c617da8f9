import Testing
import SwerveInference
@testable import SwerveServing

@Suite struct StaticTableTests {
    /// One INT64 input of shape [batch, 3]: three categorical columns with 3, 2 and 4 values.
    func wideDomain() throws -> StaticDomain {
        try StaticDomain.oneInput(name: "x", dataType: .int64, features: [.int64([0, 1, 2]), .int64([10, 20]), .int64([-5, 5, 7, 9])])
    }

    /// Three inputs, one feature each: BYTES [batch, 1], BOOL [batch, 1], INT32 [batch].
    func mixedDomain() throws -> StaticDomain {
        try StaticDomain(
            inputs: [
                .init(name: "color", dataType: .bytes, rowShape: [1]),
                .init(name: "flag", dataType: .bool, rowShape: [1]),
                .init(name: "n", dataType: .int32, rowShape: []),
            ],
            columns: [
                .init(input: 0, element: 0, values: .bytes(["red", "green", "blue"].map { Array($0.utf8) })),
                .init(input: 1, element: 0, values: .bool([false, true])),
                .init(input: 2, element: 0, values: .int32([1, 2, 3, 4, 5])),
            ])
    }

    /// A stand-in for the batched core over `mixedDomain`: a row-wise function of the inputs with
    /// an FP32 [rows, 2] output and a BYTES [rows] output.
    func mixedModel(_ inputs: [Tensor]) -> [Tensor] {
        guard case .bytes(let colors) = inputs[0].data, case .bool(let flags) = inputs[1].data,
              case .int32(let ns) = inputs[2].data else { fatalError("unexpected input types") }
        var y: [Float] = []
        var labels: [[UInt8]] = []
        for r in 0..<ns.count {
            y.append(Float(colors[r].count) * (flags[r] ? 1 : -1))
            y.append(Float(ns[r]) / 3)
            labels.append(Array("\(String(decoding: colors[r], as: UTF8.self))-\(ns[r])".utf8))
        }
        return [Tensor(shape: [ns.count, 2], data: .fp32(y)), Tensor(shape: [ns.count], data: .bytes(labels))]
    }

    @Test func enumerationAndIndexRoundTrip() throws {
        for domain in [try wideDomain(), try mixedDomain()] {
            var seen = Set<Int>()
            var batches = 0
            for batch in domain.batches(maxRows: 7) {
                batches += 1
                let rows = batch.inputs[0].shape[0]
                #expect(rows <= 7)
                for r in 0..<rows {
                    let i = domain.index(of: batch.inputs, row: r)
                    #expect(i == batch.start + r, "row \(r) of the batch at \(batch.start)")
                    if let i { seen.insert(i) }
                }
            }
            #expect(seen == Set(0..<domain.cellCount))
            #expect(batches == (domain.cellCount + 6) / 7)
        }
        let wide = try wideDomain()
        #expect(wide.cellCount == 24 && wide.strides == [8, 4, 1])
        // Mixed radix, first column most significant: [2, 20, 7] is 2*8 + 1*4 + 2 = 22.
        let row = Tensor(shape: [1, 3], data: .int64([2, 20, 7]))
        #expect(wide.index(of: [row], row: 0) == 22)
        #expect(wide.digits(of: 22) == [2, 1, 2])
        #expect(wide.inputs(forRows: 22..<23) == [row])
    }

    @Test func valuesOutsideTheDomainHaveNoIndex() throws {
        let wide = try wideDomain()
        #expect(wide.index(of: [Tensor(shape: [1, 3], data: .int64([3, 10, 5]))], row: 0) == nil)
        #expect(wide.index(of: [Tensor(shape: [1, 3], data: .int64([0, 10, 6]))], row: 0) == nil)
        #expect(wide.index(of: [Tensor(shape: [1, 3], data: .int32([0, 10, 5]))], row: 0) == nil)  // wrong type
        #expect(wide.index(of: [Tensor(shape: [1, 3], data: .int64([0, 10, 5]))], row: 1) == nil)  // no such row
        // One bad row makes the whole request fall back to computation.
        #expect(wide.indices(of: [Tensor(shape: [2, 3], data: .int64([0, 10, 5, 0, 10, 6]))]) == nil)
        #expect(wide.indices(of: [Tensor(shape: [2, 3], data: .int64([0, 10, 5, 1, 20, 9]))]) == [1, 15])

        let mixed = try mixedDomain()
        let purple = [
            Tensor(shape: [1, 1], data: .bytes([Array("purple".utf8)])),
            Tensor(shape: [1, 1], data: .bool([true])),
            Tensor(shape: [1], data: .int32([1])),
        ]
        #expect(mixed.index(of: purple, row: 0) == nil)
    }

    @Test func invalidDomainsAreRefused() {
        #expect(throws: ServingError.self) {  // element 1 of x has no values
            try StaticDomain(inputs: [.init(name: "x", dataType: .int64, rowShape: [2])],
                             columns: [.init(input: 0, element: 0, values: .int64([1]))])
        }
        #expect(throws: ServingError.self) {  // a duplicate value
            try StaticDomain.oneInput(name: "x", dataType: .int64, features: [.int64([1, 1])])
        }
        #expect(throws: ServingError.self) {  // values of the wrong type
            try StaticDomain.oneInput(name: "x", dataType: .int64, features: [.fp32([1])])
        }
        #expect(throws: ServingError.self) {  // an empty value list
            try StaticDomain.oneInput(name: "x", dataType: .int64, features: [.int64([])])
        }
    }

    @Test func lookupReturnsExactlyTheComputedOutputs() throws {
        let domain = try mixedDomain()
        var progress: [Int] = []
        let table = try StaticTable.build(domain: domain, outputNames: ["y", "label"], maxRows: 4,
                                          run: mixedModel, progress: { done, total in
                                              #expect(total == 30)
                                              progress.append(done)
                                          })
        #expect(progress == [4, 8, 12, 16, 20, 24, 28, 30])
        for i in 0..<domain.cellCount {
            let expected = mixedModel(domain.inputs(forRows: i..<(i + 1)))
            #expect(table.lookup(i) == expected, "row \(i)")
        }
        // A multi-row request (with a repeated row) is served row by row, as the core would answer it.
        let request = Tensor.concatenateRows([5, 29, 5, 0].map { domain.inputs(forRows: $0..<($0 + 1)) }.map { $0[0] })
        let requestInputs = [request] + [1, 2].map { k in Tensor.concatenateRows([5, 29, 5, 0].map { domain.inputs(forRows: $0..<($0 + 1))[k] }) }
        #expect(table.outputs(for: requestInputs) == mixedModel(requestInputs))
        #expect(table.outputs[0].data.count == 30 * 2 && table.outputs[1].data.count == 30)
    }

    @Test func builderAcceptsBatchesInAnyOrderAndChecksCoverage() throws {
        let domain = try wideDomain()
        func model(_ inputs: [Tensor]) -> [Tensor] {
            guard case .int64(let v) = inputs[0].data else { return [] }
            let rows = v.count / 3
            return [Tensor(shape: [rows], data: .int64((0..<rows).map { v[3 * $0] * 100 + v[3 * $0 + 1] + v[3 * $0 + 2] }))]
        }
        var builder = StaticTable.Builder(domain: domain, outputNames: ["s"])
        let batches = Array(domain.batches(maxRows: 5))
        for b in batches.reversed().dropLast() { try builder.store(start: b.start, outputs: model(b.inputs)) }
        #expect(throws: ServingError.self) { try builder.finish() }  // the first batch is missing
        try builder.store(start: batches[0].start, outputs: model(batches[0].inputs))
        let table = try builder.finish()
        for i in 0..<domain.cellCount {
            #expect(table.lookup(i) == model(domain.inputs(forRows: i..<(i + 1))))
        }
        #expect(throws: ServingError.self) {  // a row shape that changes between batches
            var b = StaticTable.Builder(domain: domain, outputNames: ["s"])
            try b.store(start: 0, outputs: [Tensor(shape: [1], data: .int64([1]))])
            try b.store(start: 1, outputs: [Tensor(shape: [1, 2], data: .int64([1, 2]))])
        }
    }

    @Test func unbatchedModelsTakeOneRowAtATime() throws {
        let domain = try StaticDomain.oneInput(name: "x", dataType: .bool, features: [.bool([false, true]), .bool([false, true])], batched: false)
        let batches = Array(domain.batches(maxRows: 64))
        #expect(batches.count == 4)
        #expect(batches.allSatisfy { $0.inputs[0].shape == [2] })
        let table = try StaticTable.build(domain: domain, outputNames: ["and"], maxRows: 64) { inputs in
            guard case .bool(let v) = inputs[0].data else { return [] }
            return [Tensor(shape: [], data: .bool([v[0] && v[1]]))]
        }
        #expect(table.lookup(3) == [Tensor(shape: [], data: .bool([true]))])
        #expect(table.lookup(2) == [Tensor(shape: [], data: .bool([false]))])
        #expect(table.outputs(for: [Tensor(shape: [2], data: .bool([true, true]))]) == [Tensor(shape: [], data: .bool([true]))])
    }

    @Test func estimateChecksTheBoundsBeforeBuilding() throws {
        let domain = try wideDomain()
        let outputs = [TensorInfo(name: "p", dataType: .fp32, shape: [-1, 2]), TensorInfo(name: "l", dataType: .int64, shape: [-1])]
        let e = StaticTable.estimate(domain: domain, outputs: outputs)
        #expect(e.fits && e.cells == 24 && e.bytes == 24 * (8 + 8))
        #expect(!StaticTable.estimate(domain: domain, outputs: outputs, limits: .init(maxCells: 10)).fits)
        #expect(!StaticTable.estimate(domain: domain, outputs: outputs, limits: .init(maxBytes: 100)).fits)
        let dynamic = StaticTable.estimate(domain: domain, outputs: [TensorInfo(name: "p", dataType: .fp32, shape: [-1, -1])])
        #expect(!dynamic.fits && dynamic.bytes == nil)
        #expect(throws: ServingError.self) {
            try StaticTable.build(domain: domain, outputNames: ["p"], maxRows: 8, limits: .init(maxCells: 10)) { _ in [] }
        }
        #expect(throws: ServingError.self) {  // the outputs turn out larger than the byte limit
            try StaticTable.build(domain: domain, outputNames: ["p"], maxRows: 8, limits: .init(maxBytes: 100)) { inputs in
                [Tensor(zeros: .fp32, shape: [inputs[0].shape[0], 4])]
            }
        }
    }
}
