import Foundation
import SwerveRepository
import SwerveTesting
import Testing
@testable import SwerveTraining

/// Deterministic pseudo-random numbers for reproducible distributions.
struct ValidateTestRandom {
    var state: UInt64
    mutating func next() -> Double {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Double(state >> 11) * 0x1.0p-53
    }
    /// Approximately normal (sum of 12 uniforms).
    mutating func normal(mean: Double, std: Double) -> Double {
        var s = 0.0
        for _ in 0..<12 { s += next() }
        return mean + (s - 6) * std
    }
}

@Suite struct ValidateTests {
    let schema = ValidationSchema(columns: [
        .numeric("age", min: 0, max: 120),
        .categorical("country", categories: ["FR", "DE", "US"]),
        .numeric("income", allowMissing: true),
        .label("clicked", classes: ["0", "1"]),
    ])

    func batch(rows n: Int, ageMean: Double = 40, countries: [String] = ["FR", "DE", "US"], seed: UInt64 = 1) -> ValidationBatch {
        var r = ValidateTestRandom(state: seed)
        var rows: [[String: String]] = []
        for i in 0..<n {
            rows.append([
                "age": String(format: "%.1f", min(119, max(1, r.normal(mean: ageMean, std: 8)))),
                "country": countries[Int(r.next() * Double(countries.count)) % countries.count],
                "income": String(Int(r.next() * 100_000)),
                "clicked": String(i % 2),
            ])
        }
        return ValidationBatch(rows: rows)
    }

    @Test func cleanBatchPasses() {
        let report = BatchValidator(schema: schema).validate(batch(rows: 200))
        #expect(report.passed)
        #expect(report.issues.isEmpty)
        #expect(report.rowCount == 200)
    }

    @Test func reportsEachErrorKind() throws {
        let rows: [[String: String]] = [
            ["age": "30", "country": "FR", "clicked": "1", "income": "10"],
            ["age": "abc", "country": "DE", "clicked": "0"],  // type error; income missing but allowed
            ["age": "-4", "country": "JP", "clicked": "1"],  // out of range, unseen category
            ["age": "", "country": "US", "clicked": "2"],  // missing value, unknown label
            ["age": "500", "country": "US", "clicked": "0", "extra": "?"],  // out of range, unknown column
        ]
        let report = BatchValidator(schema: schema).validate(ValidationBatch(rows: rows))
        #expect(!report.passed)
        #expect(report.issues(.typeError).first?.examples.map(\.row) == [1])
        #expect(report.issues(.typeError).first?.severity == .error)
        #expect(report.issues(.outOfRange).first?.count == 2)
        #expect(report.issues(.outOfRange).first?.examples.map(\.value) == ["-4", "500"])
        #expect(report.issues(.missingValue).map(\.column) == ["age"])  // income allows missing
        #expect(report.issues(.unseenCategory).first?.severity == .warning)
        #expect(report.issues(.unseenCategory).first?.examples.first?.value == "JP")
        #expect(report.issues(.unknownLabel).first?.severity == .error)
        #expect(report.issues(.unknownColumn).first?.column == "extra")
        #expect(report.issues(.unknownColumn).first?.severity == .warning)

        let noLabel = try ValidationBatch(columns: [("age", .numbers([1, 2])), ("country", .text(["FR", nil]))])
        let r2 = BatchValidator(schema: schema).validate(noLabel)
        #expect(r2.issues(.missingColumn).map(\.column) == ["income", "clicked"])
        #expect(r2.issues(.missingValue).map(\.column) == ["country"])
        #expect(BatchValidator(schema: schema).validate(ValidationBatch(rows: [])).issues(.emptyBatch).count == 1)
        #expect(throws: StorageError.self) { try ValidationBatch(columns: [("a", .numbers([1])), ("b", .numbers([]))]) }
    }

    @Test func unseenCategoryThresholdMakesItAnError() {
        var options = ValidationOptions()
        options.maxUnseenCategoryFraction = 0.1
        let b = batch(rows: 100, countries: ["FR", "JP"])
        let report = BatchValidator(schema: schema, options: options).validate(b)
        #expect(report.issues(.unseenCategory).first?.severity == .error)
    }

    @Test func psiIsNearZeroForSameDistributionAndLargeForShift() throws {
        let reference = ReferenceStatistics(batch: batch(rows: 5000, seed: 7), schema: schema)
        #expect(reference.numeric["age"]?.proportions.count == 10)
        #expect(abs((reference.numeric["age"]?.proportions.reduce(0, +) ?? 0) - 1) < 1e-9)
        #expect(abs((reference.numeric["age"]?.mean ?? 0) - 40) < 1)
        #expect(reference.categorical["country"]?.frequencies.count == 3)

        let same = BatchValidator(schema: schema, reference: reference).validate(batch(rows: 5000, seed: 99))
        let agePSI = try #require(same.skew.first { $0.column == "age" }).psi
        let countryPSI = try #require(same.skew.first { $0.column == "country" }).psi
        #expect(agePSI < 0.02)
        #expect(countryPSI < 0.01)
        #expect(same.passed)

        let shifted = BatchValidator(schema: schema, reference: reference).validate(batch(rows: 5000, ageMean: 55, countries: ["FR", "FR", "FR", "US"], seed: 3))
        #expect(try #require(shifted.skew.first { $0.column == "age" }).psi > 0.25)
        #expect(try #require(shifted.skew.first { $0.column == "country" }).psi > 0.25)
        #expect(!shifted.passed)
        #expect(Set(shifted.issues(.skew).compactMap(\.column)) == ["age", "country"])
        #expect(shifted.issues(.skew).allSatisfy { $0.severity == .error })

        // Stored and reloaded the reference gives the same answer.
        let reloaded = try ReferenceStatistics.decode(reference.jsonData())
        #expect(reloaded == reference)
    }

    @Test func psiFormula() {
        #expect(populationStabilityIndex(reference: [0.5, 0.5], actual: [0.5, 0.5]) == 0)
        let psi = populationStabilityIndex(reference: [0.5, 0.5], actual: [0.9, 0.1])
        #expect(abs(psi - ((0.9 - 0.5) * log(0.9 / 0.5) + (0.1 - 0.5) * log(0.1 / 0.5))) < 1e-12)
    }

    @Test func smallBatchesSkipSkew() {
        let reference = ReferenceStatistics(batch: batch(rows: 1000), schema: schema)
        let report = BatchValidator(schema: schema, reference: reference).validate(batch(rows: 10, ageMean: 90))
        #expect(report.skew.isEmpty)
    }

    @Test func quarantineWritesDataAndReport() throws {
        let dir = try registryTestDirectory("quarantine")
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = ValidationBatch(rows: [["age": "-1", "country": "FR", "clicked": "1", "income": "5"],
                                         ["age": "2", "country": "a,\"b\"", "clicked": "0", "income": "6"]])
        let report = BatchValidator(schema: schema).validate(bad)
        #expect(!report.passed)
        let source = dir.appendingPathComponent("incoming.csv")
        try Data("age,country\n-1,FR\n".utf8).write(to: source)
        let q = Quarantine(directory: dir.appendingPathComponent("quarantine"))
        let folder = try q.quarantine(batch: bad, report: report, source: ["file": "incoming.csv"], files: [source])
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(names == ["data.csv", "original-incoming.csv", "report.json", "source.json"])
        let csv = try String(contentsOf: folder.appendingPathComponent("data.csv"), encoding: .utf8)
        #expect(csv.hasPrefix("age,clicked,country,income\n-1,1,FR,5\n"))
        #expect(csv.contains(#"2,0,"a,""b""",6"#))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("report.json"))) as! [String: Any]
        #expect(json["passed"] as? Bool == false)
        #expect(((json["issues"] as? [[String: Any]])?.first?["kind"] as? String) == "out_of_range")
        let entries = q.entries()
        #expect(entries.count == 1)
        #expect(entries[0].report == report)
        #expect(entries[0].source == ["file": "incoming.csv"])
        // Nothing half-written is left in the quarantine folder.
        #expect(try FileManager.default.contentsOfDirectory(atPath: q.directory.path).filter { $0.hasPrefix(".") }.isEmpty)
    }
}
