import Foundation
import SwerveRepository
import SwerveTraining
import Testing

@Suite("Training: schema, CSV, data sets")
struct TrainingDataTests {
    static let schemaJSON = """
        {"columns": [
          {"name": "x0", "type": "numeric", "min": 0},
          {"name": "c0", "type": "categorical", "categories": ["mobile", "desktop"]},
          {"name": "note", "type": "ignore"},
          {"name": "y", "type": "label", "classes": ["no", "yes"]}
        ], "label": "y"}
        """

    var schema: DataSchema { get throws { try DataSchema.decode(Array(Self.schemaJSON.utf8)) } }

    func parse(_ csv: String) throws -> Dataset {
        try Dataset(csv: CSVTable(parsing: Array(csv.utf8), source: "t.csv"), schema: schema, source: "t.csv")
    }

    func error(_ csv: String) -> TrainingError? {
        do {
            _ = try parse(csv)
            return nil
        } catch {
            return error as? TrainingError
        }
    }

    @Test func readsQuotedFieldsAndLineBreaks() throws {
        let data = try parse("x0,c0,note,y\r\n1.5,mobile,\"a, \"\"quoted\"\"\nnote\",yes\r\n-2,\"desktop\",,no\n\n")
        #expect(data.rowCount == 2)
        #expect(data.numeric == [[1.5, -2]])
        #expect(data.categorical == [["mobile", "desktop"]])
        #expect(data.labels == .classes(indices: [1, 0], names: ["no", "yes"]))
    }

    @Test func unterminatedQuoteNamesLineAndColumn() {
        let e = error("x0,c0,note,y\n1,mobile,ok,yes\n2,\"desktop,x,no\n")
        #expect(e?.line == 3)
        #expect(e?.column == "c0")
        #expect(e?.message.contains("never closed") == true)
    }

    @Test func quoteInsideUnquotedFieldIsAnError() {
        let e = error("x0,c0,note,y\n1,mo\"bile,ok,yes\n")
        #expect(e?.line == 2)
        #expect(e?.column == "c0")
    }

    @Test func textAfterClosingQuoteIsAnError() {
        // The record starts on line 2 and its quoted note spans two lines.
        let e = error("x0,c0,note,y\n1,mobile,\"two\nlines\"x,yes\n")
        #expect(e?.line == 3)
        #expect(e?.column == "note")
    }

    @Test func wrongFieldCountNamesLineAndFirstMissingColumn() {
        let e = error("x0,c0,note,y\n1,mobile,\"a\nb\",yes\n2,desktop\n")
        #expect(e?.line == 4)
        #expect(e?.column == "note")
        #expect(e?.message.contains("expected 4 fields") == true)
        let extra = error("x0,c0,note,y\n1,mobile,a,yes,extra\n")
        #expect(extra?.line == 2)
    }

    @Test func nonNumericValueNamesLineAndColumn() {
        let e = error("x0,c0,note,y\n1,mobile,,yes\n2,mobile,,no\nabc,desktop,,no\n")
        #expect(e?.line == 4)
        #expect(e?.column == "x0")
        #expect(e?.description == "line 4, column 'x0': t.csv: 'abc' is not a finite number")
        #expect(error("x0,c0,note,y\n,mobile,,yes\n")?.column == "x0")
        #expect(error("x0,c0,note,y\nnan,mobile,,yes\n")?.column == "x0")
    }

    @Test func unknownClassAndUnknownHeaderColumnAreErrors() {
        #expect(error("x0,c0,note,y\n1,mobile,,maybe\n")?.column == "y")
        #expect(error("x0,c0,note,y,z\n1,mobile,,yes,3\n")?.column == "z")
        #expect(error("x0,note,y\n1,,yes\n")?.column == "c0")
        #expect(error("")?.line == 1)
    }

    @Test func schemaChecks() throws {
        #expect(throws: TrainingError.self) { try DataSchema.decode(Array(#"{"columns": [{"name": "a", "type": "numeric"}]}"#.utf8)) }
        #expect(throws: TrainingError.self) { try DataSchema.decode(Array(#"{"columns": [{"name": "a", "type": "numeric"}, {"name": "a", "type": "label"}]}"#.utf8)) }
        #expect(throws: TrainingError.self) { try DataSchema.decode(Array(#"{"columns": [{"name": "a", "type": "weird"}]}"#.utf8)) }
        // A numeric column named as the label is a regression label.
        let s = try DataSchema.decode(Array(#"{"columns": [{"name": "a", "type": "numeric"}, {"name": "t", "type": "numeric"}], "label": "t"}"#.utf8))
        #expect(s.task == .regression)
        #expect(s.numericFeatures.map(\.name) == ["a"])
    }

    @Test func inferredClassesSortNumerically() throws {
        let s = try DataSchema.decode(Array(#"{"columns": [{"name": "a", "type": "numeric"}, {"name": "y", "type": "label"}]}"#.utf8))
        let d = try Dataset(csv: CSVTable(parsing: Array("a,y\n1,10\n2,2\n3,9\n4,2\n".utf8)), schema: s)
        #expect(d.classNames == ["2", "9", "10"])
        #expect(d.labels == .classes(indices: [2, 0, 1, 0], names: ["2", "9", "10"]))
    }

    @Test func splitIsDeterministicExactAndMatchesTheReferenceScript() throws {
        let e = try TrainingFixtures.experiment("breast_cancer_logistic")
        let data = try TrainingFixtures.dataset("breast_cancer")
        let a = try data.split(validation: e.validation, holdout: e.holdout, seed: e.seed)
        let b = try data.split(validation: e.validation, holdout: e.holdout, seed: e.seed)
        #expect(a.train == b.train && a.holdout == b.holdout && a.validation == b.validation)
        #expect(a.train.rowCount + a.validation.rowCount + a.holdout.rowCount == data.rowCount)
        #expect(a.holdout.rowCount == 114 && a.validation.rowCount == 57)
        // The script's first holdout rows, located by their values.
        let head = e.holdout_indices_head.map { data.rows([$0]).numeric.map { $0[0] } }
        #expect((0..<head.count).map { i in a.holdout.numeric.map { $0[i] } } == head)
        let other = try data.split(validation: e.validation, holdout: e.holdout, seed: e.seed + 1)
        #expect(other.holdout != a.holdout)
    }

    @Test func sha256KnownAnswers() {
        func hex(_ s: String) -> String { SHA256.hash(Array(s.utf8)).map { String(format: "%02x", $0) }.joined() }
        #expect(hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var h = SHA256()
        for _ in 0..<1000 { h.update(Array(repeating: UInt8(ascii: "a"), count: 1000)) }
        #expect(h.finalize().map { String(format: "%02x", $0) }.joined() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func fingerprintIsStableAndSensitive() throws {
        let a = try parse("x0,c0,note,y\n1,mobile,,yes\n2,desktop,,no\n")
        let b = try parse("x0,c0,note,y\n1.0,mobile,ignored,yes\n2,desktop,,no\n")
        #expect(a.fingerprint() == b.fingerprint())
        #expect(a.fingerprint().algorithm == "sha256" && a.fingerprint().digest.count == 64)
        #expect(try parse("x0,c0,note,y\n1,mobile,,yes\n2.0000001,desktop,,no\n").fingerprint() != a.fingerprint())
        #expect(try parse("x0,c0,note,y\n2,desktop,,no\n1,mobile,,yes\n").fingerprint() != a.fingerprint())
        #expect(try parse("x0,c0,note,y\n1,desktop,,yes\n2,desktop,,no\n").fingerprint() != a.fingerprint())
        // Pinned: the canonical form must not drift, or lineage breaks.
        #expect(a.fingerprint().digest == TrainingDataTests.pinnedDigest)
    }
    static let pinnedDigest = "eb310473bc45ebea01f611190ec4d33adb70ad0ff544f6259b8efc8cead570c9"

    @Test func featureStatistics() throws {
        let data = try TrainingFixtures.dataset("breast_cancer")
        let stats = FeatureStatistics(data)
        #expect(stats.rows == 569 && stats.numeric.count == 30)
        let f0 = stats.numeric[0], column = data.numeric[0]
        let mean = column.reduce(0, +) / Double(column.count)
        #expect(close(f0.mean, mean, rel: 1e-12))
        #expect(f0.min == column.min()! && f0.max == column.max()!)
        #expect(f0.binCounts.reduce(0, +) == 569 && f0.binEdges.count == f0.binCounts.count + 1)
        #expect(f0.binCounts.allSatisfy { abs($0 - 57) < 15 }, "quantile bins hold about a tenth each: \(f0.binCounts)")
        #expect(f0.histogram(of: [-1e9, 1e9]) == [1] + Array(repeating: 0, count: f0.binCounts.count - 2) + [1])
        #expect(stats.labelClasses?.counts.reduce(0, +) == 569)
        #expect(try FeatureStatistics.decode(stats.encodeJSON()) == stats)
        let cat = CategoricalFeatureStatistics(name: "c", values: ["b", "a", "b", "c", "a", "b"])
        #expect(cat.categories == ["b", "a", "c"] && cat.counts == [3, 2, 1])
        #expect(cat.frequency(of: "a") == 2.0 / 6 && cat.frequency(of: "zz") == 0)
    }
}
