import Foundation
import Testing
import SwerveInference
import SwerveProto
import SwerveRepository
@testable import SwerveServing

@Suite struct FeedbackJoinTests {
    static let layout = FeedbackLayout(model: "m", version: 3, features: [FeatureColumn(name: "x", input: "input", column: 1)], classNames: ["no", "yes"])

    static func request(_ x: [Float]) -> [UInt8] {
        var r = ModelInferRequest()
        r.modelName = "m"
        r.inputs = [.init(name: "input", datatype: "FP32", shape: [1, Int64(x.count)])]
        r.rawInputContents = [x.withUnsafeBytes { Array($0) }]
        return r.serializedBytes()
    }

    static func response(label: Int64, probabilities: [Float]) -> [UInt8] {
        var r = ModelInferResponse()
        var l = InferTensorContents(); l.int64Contents = [label]
        var p = InferTensorContents(); p.fp32Contents = probabilities
        r.outputs = [.init(name: "label", datatype: "INT64", shape: [1], contents: l),
                     .init(name: "probabilities", datatype: "FP32", shape: [1, 2], contents: p)]
        return r.serializedBytes()
    }

    @Test func joinsOnceAndTellsExpiredFromUnknown() throws {
        let join = FeedbackJoin()
        join.record(model: "m", id: "a", layout: Self.layout, request: Self.request([1, 2.5]), response: Self.response(label: 1, probabilities: [0.2, 0.8]),
                    timeMs: 1000, expiresMs: 5000)
        join.record(model: "m", id: "b", layout: Self.layout, request: Self.request([3, 4]), response: Self.response(label: 0, probabilities: [0.6, 0.4]),
                    timeMs: 1000, expiresMs: 2000)
        let r = join.join(model: "m", labels: [LabelFeedback(requestID: "a", label: "yes"), LabelFeedback(requestID: "a", label: "no"),
                                               LabelFeedback(requestID: "b", label: "yes"), LabelFeedback(requestID: "c", label: "yes"),
                                               LabelFeedback(requestID: "a", label: "")], nowMs: 3000)
        #expect(r.map(\.outcome) == [.joined, .duplicate, .expired, .unknown, .invalid])
        #expect(r[0].version == 3 && r[0].example == Example(features: ["x": "2.5"], label: "yes"))
        // The first label counts; the repeated one does not.
        let s = Self.layout.metrics.snapshot
        #expect(s.labels == 1 && s.correct == 1)
        #expect(abs(s.logLoss! - -log(Double(Float(0.8)))) < 1e-12)
        #expect(abs(s.calibrationError! - abs(1 - Double(Float(0.8)))) < 1e-12)
        // Other models' indexes are apart.
        #expect(join.join(model: "other", labels: [LabelFeedback(requestID: "a", label: "yes")], nowMs: 3000).map(\.outcome) == [.unknown])
    }

    @Test func theIndexIsBoundedAndTheOldestLeaveFirst() {
        let join = FeedbackJoin()
        let layout = FeedbackLayout(model: "m", version: 1, features: [], classNames: nil)
        let req = Self.request([0, 0]), resp = Self.response(label: 0, probabilities: [1, 0])
        let n = FeedbackJoin.maxEntriesPerModel + 10
        for i in 0..<n {
            join.record(model: "m", id: "id\(i)", layout: layout, request: req, response: resp, timeMs: 10, expiresMs: 1_000_000)
        }
        let r = join.join(model: "m", labels: [LabelFeedback(requestID: "id0", label: "0"), LabelFeedback(requestID: "id9", label: "0"),
                                               LabelFeedback(requestID: "id10", label: "0"), LabelFeedback(requestID: "id\(n - 1)", label: "1")], nowMs: 20)
        #expect(r.map(\.outcome) == [.expired, .expired, .unmapped, .unmapped])
        // Without features known the label still counts (class values: no swerve.classes).
        #expect(layout.metrics.snapshot.labels == 2 && layout.metrics.snapshot.correct == 1)
    }

    @Test func regressionLabelsGiveErrors() {
        let layout = FeedbackLayout(model: "r", version: 1, features: [], classNames: nil)
        var r = ModelInferResponse()
        var v = InferTensorContents(); v.fp32Contents = [2.5]
        r.outputs = [.init(name: "variable", datatype: "FP32", shape: [1, 1], contents: v)]
        let prediction = layout.prediction(ofResponse: r.serializedBytes())
        #expect(prediction == .value(2.5))
        layout.metrics.record(prediction!, label: "4", layout: layout)
        layout.metrics.record(prediction!, label: "2", layout: layout)
        #expect(!layout.metrics.record(prediction!, label: "n/a", layout: layout))
        let s = layout.metrics.snapshot
        #expect(s.meanAbsoluteError == 1 && abs(s.rootMeanSquaredError! - (1.25 as Double).squareRoot()) < 1e-12 && s.accuracy == nil)
    }
}
