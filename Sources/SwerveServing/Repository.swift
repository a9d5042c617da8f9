import Foundation

/// The on-disk model repository: `<repo>/<model>/config.json` and `<repo>/<model>/<version>/model.onnx`
/// (with `metadata.json` beside it). Version folders are positive integers; anything else, such as a
/// half-written `.tmp-*` folder, is ignored, so a publisher that writes to a temporary folder and renames
/// it is never seen half done.
public struct ModelRepository: Sendable {
    public let root: URL

    public init(path: String) {
        root = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
    }

    /// Model folder names, sorted. Hidden folders are skipped.
    public func modelNames() throws -> [String] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
            throw ServingError(.failedPrecondition, "model repository \(root.path) does not exist or is not a directory")
        }
        return try fm.contentsOfDirectory(atPath: root.path)
            .filter { !$0.hasPrefix(".") && isDirectory(root.appendingPathComponent($0)) }
            .sorted()
    }

    public func modelExists(_ name: String) -> Bool {
        Self.isValidModelName(name) && isDirectory(root.appendingPathComponent(name))
    }

    /// A model name must be a single path component: no separators, no "..".
    public static func isValidModelName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("/") && name != "." && name != ".." && !name.hasPrefix(".")
    }

    /// Complete versions of a model: positive-integer folders holding a model.onnx.
    public func versions(of model: String) -> [Int] {
        let dir = root.appendingPathComponent(model)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return entries.compactMap { name -> Int? in
            guard let v = Int(name), v > 0, String(v) == name else { return nil }
            let file = dir.appendingPathComponent(name).appendingPathComponent("model.onnx")
            return FileManager.default.fileExists(atPath: file.path) ? v : nil
        }.sorted()
    }

    public func modelFile(_ model: String, version: Int) -> URL {
        root.appendingPathComponent(model).appendingPathComponent(String(version)).appendingPathComponent("model.onnx")
    }

    public func metadataFile(_ model: String, version: Int) -> URL {
        root.appendingPathComponent(model).appendingPathComponent(String(version)).appendingPathComponent("metadata.json")
    }

    /// The model's settings from config.json, or defaults when there is none.
    public func settings(of model: String) throws -> ModelSettings {
        let file = root.appendingPathComponent(model).appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: file.path) else { return ModelSettings() }
        do {
            return try ModelSettings(json: Data(contentsOf: file))
        } catch let e as ServingError {
            throw e
        } catch {
            throw ServingError(.failedPrecondition, "\(model)/config.json is not valid JSON: \(error.localizedDescription)")
        }
    }

    /// The lineage record of a version as string pairs (nested values as JSON), if present.
    public func metadata(of model: String, version: Int) -> [String: String] {
        guard let data = try? Data(contentsOf: metadataFile(model, version: version)),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        var out: [String: String] = [:]
        for (k, v) in obj {
            if let s = v as? String { out[k] = s }
            else if let d = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]) { out[k] = String(decoding: d, as: UTF8.self) }
        }
        return out
    }

    private func isDirectory(_ url: URL) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && isDir.boolValue
    }
}
