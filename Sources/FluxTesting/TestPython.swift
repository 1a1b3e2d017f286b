import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The Python interpreter that tests run their peers, checks and the `clients/python` scripts with.
///
/// The packages they import (websockets, selenium, matplotlib) live in the project's virtual environment,
/// `.venv` at the repository root, which `scripts/setup.sh test` (run by `make test`) makes from the system's
/// Python: a stock Debian or Ubuntu refuses `pip install` into its own Python (PEP 668). In order:
/// 1. `FLUXGATE_PYTHON`, when set (an interpreter of your own);
/// 2. `.venv/bin/python3` at the repository root, when it exists;
/// 3. the first `python3` on `PATH`: the standard-library scripts still run, those that need a package fail
///    with an `ImportError` that names it.
public enum TestPython {
    /// The interpreter, resolved once.
    public static let executable: URL = resolve()

    /// The repository root: this file is `Sources/FluxTesting/TestPython.swift`.
    public static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The project's virtual environment's interpreter (it may not exist yet).
    public static let virtualEnvironmentPython = repositoryRoot.appendingPathComponent(".venv/bin/python3")

    private static func resolve() -> URL {
        let environment = ProcessInfo.processInfo.environment
        if let chosen = environment["FLUXGATE_PYTHON"], !chosen.isEmpty {
            return URL(fileURLWithPath: chosen)
        }
        if access(virtualEnvironmentPython.path, X_OK) == 0 {
            return virtualEnvironmentPython
        }
        for directory in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("python3")
            if access(candidate.path, X_OK) == 0 { return candidate }
        }
        return URL(fileURLWithPath: "/usr/bin/python3")
    }
}
