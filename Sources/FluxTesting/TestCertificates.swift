import Foundation

/// A throwaway certificate authority and a server certificate it issued for `localhost` and `127.0.0.1`, made
/// with the `openssl` command-line tool in a temporary directory, for TLS tests over loopback.
///
/// Made once per test process (`shared()`); every file is PEM.
public struct TestCertificates: Sendable {
    /// The directory holding the files.
    public let directory: URL
    /// The CA's certificate: what a client must trust.
    public var caFile: String { path("ca.pem") }
    /// The server's certificate (issued by the CA, valid for `localhost` and `127.0.0.1`).
    public var certificateFile: String { path("server.pem") }
    /// The server certificate's private key.
    public var keyFile: String { path("server-key.pem") }
    /// A private key that belongs to no certificate (for key/certificate mismatch tests).
    public var unrelatedKeyFile: String { path("unrelated-key.pem") }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private static let cache = Cache()

    /// The certificates of this test process, made on first use.
    public static func shared() async throws -> TestCertificates {
        try await cache.certificates()
    }

    private actor Cache {
        private var made: TestCertificates?

        func certificates() async throws -> TestCertificates {
            if let made { return made }
            let certificates = try await TestCertificates.make()
            made = certificates
            return certificates
        }
    }

    /// Makes a new CA, server certificate and keys in a new temporary directory.
    public static func make() async throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory)
        let extensions = directory.appendingPathComponent("server.ext")
        try """
            subjectAltName = DNS:localhost, IP:127.0.0.1
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature
            extendedKeyUsage = serverAuth
            """.write(to: extensions, atomically: true, encoding: .utf8)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try await openssl(["req", "-x509"] + ec + [
            "-keyout", certificates.path("ca-key.pem"), "-out", certificates.caFile, "-days", "2",
            "-subj", "/CN=Fluxgate Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        try await openssl(["req"] + ec + [
            "-keyout", certificates.keyFile, "-out", certificates.path("server.csr"), "-subj", "/CN=localhost",
        ])
        try await openssl([
            "x509", "-req", "-in", certificates.path("server.csr"), "-CA", certificates.caFile,
            "-CAkey", certificates.path("ca-key.pem"), "-set_serial", "\(UInt32.random(in: 1...UInt32.max))",
            "-days", "2", "-extfile", extensions.path, "-out", certificates.certificateFile,
        ])
        try await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", certificates.unrelatedKeyFile])
        return certificates
    }

    /// Runs the `openssl` command-line tool (for keys tests make themselves); throws with its error output when it fails.
    public static func openssl(_ arguments: [String]) async throws {
        let executable = URL(fileURLWithPath: "/usr/bin/openssl")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw ConformanceFailure(description: "TLS tests need the openssl command-line tool at /usr/bin/openssl (apt-get install openssl)")
        }
        let process = try await ChildProcess.run(executable, arguments, timeout: .seconds(30))
        guard process.status == 0 else {
            throw ConformanceFailure(description: "openssl \(arguments.joined(separator: " ")) failed (\(process.status.map(String.init) ?? "timed out")): \(process.errorOutput)")
        }
    }

    /// Deletes the files.
    public func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}
