import Testing
@testable import SwerveProto

@Suite struct TrainingMessageTests {
    @Test func trainingMessagesRoundTrip() throws {
        var s = SubmitJobRequest()
        s.modelName = "ads"; s.modelKind = "logistic"; s.dataPath = "/data"; s.schemaJSON = #"{"columns": []}"#
        s.label = "y"; s.continuous = true; s.hyperparameters = ["lr": "0.1", "seed": "7"]; s.pollSeconds = 5
        #expect(try SubmitJobRequest(serializedBytes: s.serializedBytes()) == s)

        var st = JobStatus(); st.jobID = "j1"; st.state = "running"; st.publishedVersion = 3; st.examplesSeen = 10
        var ev = JobEvent(); ev.status = st; ev.progressLine = "epoch 1"; ev.epoch = 1; ev.trainLoss = 0.5
        #expect(try JobEvent(serializedBytes: ev.serializedBytes()) == ev)
        #expect(try ListJobsResponse(serializedBytes: ListJobsResponse(jobs: [st, st]).serializedBytes()).jobs.count == 2)

        let ap = AppendExamplesRequest(modelName: "ads", examples: [Example(features: ["device": "mobile", "x": "1.5"], label: "1")])
        #expect(try AppendExamplesRequest(serializedBytes: ap.serializedBytes()) == ap)
        let vi = VersionInfo(modelName: "ads", version: 2, status: "serving", lineageJSON: "{}")
        #expect(try ListVersionsResponse(serializedBytes: ListVersionsResponse(versions: [vi]).serializedBytes()).versions == [vi])
        #expect(try VersionRef(serializedBytes: VersionRef(modelName: "m", version: 4).serializedBytes()) == VersionRef(modelName: "m", version: 4))
    }

    @Test func exampleFeatureKeysWithNULAreRejected() {
        // examples[0].features["a\0b"] = "1"
        let entry: [UInt8] = [0x0A, 3, UInt8(ascii: "a"), 0, UInt8(ascii: "b"), 0x12, 1, UInt8(ascii: "1")]
        let example: [UInt8] = [0x0A, UInt8(entry.count)] + entry
        #expect(throws: ProtoDecodingError.self) { try AppendExamplesRequest(serializedBytes: [0x12, UInt8(example.count)] + example) }
    }
}
