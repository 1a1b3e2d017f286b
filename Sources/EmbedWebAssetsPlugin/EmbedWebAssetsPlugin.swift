import Foundation
import PackagePlugin

/// Compiles the web UI's files (`Sources/FluxGateway/WebUI/Assets`) into FluxGateway, so `fluxgate` is one file
/// to copy: a build command runs `fluxgate-embed-assets`, which writes them into a generated Swift source file.
/// SwiftPM reruns it when a file changes; a file added or removed is seen on the next build.
@main
struct EmbedWebAssetsPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let directory = target.directoryURL.appending(path: "WebUI").appending(path: "Assets")
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedWebAssets.swift")
        return [
            .buildCommand(
                displayName: "Embedding the web UI's \(files.count) files into \(target.name)",
                executable: try context.tool(named: "fluxgate-embed-assets").url,
                arguments: [output.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output]
            )
        ]
    }
}
