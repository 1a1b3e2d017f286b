import FluxTesting
import Foundation
import Testing

/// The Python clients install as `clients/python/requirements.txt` says, into a virtual environment (a stock
/// Debian/Ubuntu refuses `pip install` into its own Python, PEP 668): the interpreter the tests use is the
/// project's `.venv` that `scripts/setup.sh` makes from the system's Python, and every client starts there with
/// the packages it imports.
@Suite struct PythonClientsInstallTests {
    static let clients = TestPython.repositoryRoot.appendingPathComponent("clients/python")

    /// The scripts a user runs, each with a `--help` that imports everything the script needs.
    static let scripts = ["subscribe.py", "poll.py", "loadgen.py", "idle_subscribers_check.py", "slow_subscriber_check.py", "group_worker.py"]

    /// Unless `FLUXGATE_PYTHON` names another interpreter (then the user chose it, and this does not apply).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["FLUXGATE_PYTHON"]?.isEmpty ?? true, "FLUXGATE_PYTHON chooses the interpreter"))
    func theTestsRunPythonFromTheProjectsVirtualEnvironment() async throws {
        #expect(TestPython.executable == TestPython.virtualEnvironmentPython, "no \(TestPython.virtualEnvironmentPython.path): run scripts/setup.sh test")
        let run = try await ChildProcess.run(TestPython.executable, ["-c", "import sys; print(sys.prefix != sys.base_prefix)"])
        #expect(run.status == 0, "\(run.errorOutput)")
        #expect(run.outputLines == ["True"], "\(TestPython.executable.path) is not a virtual environment's Python")
    }

    @Test(arguments: scripts)
    func aClientStartsWithThePackagesItImports(script: String) async throws {
        let run = try await ChildProcess.run(TestPython.executable, [Self.clients.appendingPathComponent(script).path, "--help"])
        #expect(run.status == 0, "\(script) --help: \(run.errorOutput.suffix(2000))")
        #expect(run.outputLines.first?.hasPrefix("usage:") == true, "\(script) --help printed \(run.outputLines.prefix(3))")
    }

    /// The `websockets` versions before 14 lack `additional_headers` and crash the clients: the requirement keeps
    /// them out, and the installed one is inside it.
    @Test func theInstalledWebsocketsIsOneTheClientsWorkWith() async throws {
        let run = try await ChildProcess.run(TestPython.executable, ["-c", "import websockets; print(websockets.__version__)"])
        #expect(run.status == 0, "\(run.errorOutput)")
        let version = try #require(run.outputLines.first).split(separator: ".").compactMap { Int($0) }
        #expect(version.count >= 2 && (version[0], version[1]) >= (14, 2) && version[0] < 18, "websockets \(run.outputLines)")
        let requirements = try String(contentsOf: Self.clients.appendingPathComponent("requirements.txt"), encoding: .utf8)
        #expect(requirements.contains("websockets>=14.2,<18"))
    }

    /// A Python without the package (the system's, say) gets what to do, not a traceback.
    @Test func aClientWithoutItsPackageSaysHowToInstallIt() async throws {
        let script = Self.clients.appendingPathComponent("subscribe.py").path
        let hideWebsockets = """
            import runpy, sys
            sys.modules["websockets"] = None  # makes `import websockets` fail as on a Python without it
            sys.path.insert(0, sys.argv[1].rsplit("/", 1)[0])
            sys.argv = [sys.argv[1], "ws://127.0.0.1:1"]
            runpy.run_path(sys.argv[0], run_name="__main__")
            """
        let run = try await ChildProcess.run(TestPython.executable, ["-c", hideWebsockets, script])
        #expect(run.status == 1)
        #expect(run.errorOutput.contains("subscribe.py: needs the Python package websockets"), "\(run.errorOutput)")
        #expect(run.errorOutput.contains("make clients"))
        #expect(!run.errorOutput.contains("Traceback"), "\(run.errorOutput)")
    }
}
