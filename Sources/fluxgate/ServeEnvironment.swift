import Foundation

/// `fluxgate serve` options from the environment, for containers and service managers: every long option
/// `--some-option` has a variable `FLUXGATE_SOME_OPTION` (`FLUXGATE_STORE`, `FLUXGATE_PORT`, `FLUXGATE_TOKEN_FILE`, …).
///
/// Precedence: the command line, then the environment, then `--config`'s file (`FLUXGATE_CONFIG` names one
/// too). An option given on the command line ignores its variable; an empty variable counts as unset. A list
/// option (`--allow-origin`, `--trusted-proxy`, `--jwt-secret-file`, `--jwt-public-key`) takes a comma-separated
/// list. `FLUXGATE_STORE_FILE` names a file holding the store URL, so a PostgreSQL password stays out of the
/// command line and out of the environment (a Docker secret, a systemd credential): the file's text, without its
/// trailing newline.
enum ServeEnvironment {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Every long option of `serve` and whether it repeats. `ServeEnvironmentTests` checks this list against
    /// `serve --help`, so a new option cannot be forgotten here.
    static let options: [(name: String, repeats: Bool)] = [
        ("config", false), ("host", false), ("port", false), ("store", false), ("public-url", false),
        ("trusted-proxy", true), ("max-body-size", false), ("allow-origin", true), ("max-connections", false),
        ("max-connections-per-address", false), ("max-header-size", false), ("request-timeout", false),
        ("idle-timeout", false), ("ping-interval", false), ("max-subscriptions", false), ("append-rate", false),
        ("append-burst", false), ("token-file", false), ("jwt-secret-file", true), ("jwt-public-key", true),
        ("jwt-issuer", false), ("jwt-audience", false), ("tls-cert", false), ("tls-key", false), ("graphite", false),
        ("graphite-prefix", false), ("graphite-interval", false), ("sinks", false), ("sinks-file", false), ("sinks-key-file", false), ("sinks-previous-key-file", true),
        ("log-level", false),
    ]

    /// The variable that stands for `--name`: `FLUXGATE_` and the name in upper case, dashes as underscores.
    static func variable(for name: String) -> String {
        "FLUXGATE_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// The variable naming a file that holds the store URL.
    static let storeFileVariable = "FLUXGATE_STORE_FILE"

    /// What the environment added to a `serve` command line: the arguments and the variables they came from.
    struct Expansion: Equatable {
        var arguments: [String]
        /// The variables used, in option order (names only: their values may be secrets).
        var variables: [String]
    }

    /// The command line with the environment's `serve` options inserted right after `serve` (before the command
    /// line's own, which therefore win); other command lines unchanged.
    static func expand(_ arguments: [String], environment: [String: String]) throws -> Expansion {
        guard arguments.first == "serve" else { return Expansion(arguments: arguments, variables: []) }
        let given = Set(arguments.dropFirst().compactMap(longOptionName))
        var inserted: [String] = []
        var variables: [String] = []
        for option in options where !given.contains(option.name) {
            let name = variable(for: option.name)
            var value = environment[name].flatMap { $0.isEmpty ? nil : $0 }
            if option.name == "store", let path = environment[storeFileVariable], !path.isEmpty {
                guard value == nil else {
                    throw Failure(description: "both \(name) and \(storeFileVariable) are set; keep one (the file keeps a password out of the environment)")
                }
                value = try storeURL(fromFile: path)
                variables.append(storeFileVariable)
            } else if value != nil {
                variables.append(name)
            }
            guard let value else { continue }
            let values = option.repeats ? value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } : [value]
            for item in values { inserted += ["--\(option.name)", item] }
        }
        return Expansion(arguments: ["serve"] + inserted + arguments.dropFirst(), variables: variables)
    }

    /// `--name` of `--name` or `--name=value`; `nil` for anything else (values, short flags, `--`).
    private static func longOptionName(_ argument: String) -> String? {
        guard argument.hasPrefix("--"), argument.count > 2 else { return nil }
        let body = argument.dropFirst(2)
        return String(body.split(separator: "=", maxSplits: 1).first ?? body)
    }

    /// The store URL kept in `path`: its text without surrounding whitespace and newlines.
    static func storeURL(fromFile path: String) throws -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw Failure(description: "cannot read \(storeFileVariable)=\(path): \(error.localizedDescription); it names a file holding the store URL, e.g. postgres://fluxgate:SECRET@db:5432/fluxgate")
        }
        guard data.count <= 64 * 1024, let text = String(data: data, encoding: .utf8) else {
            throw Failure(description: "\(storeFileVariable)=\(path) is not a store URL (a short UTF-8 text file, e.g. postgres://fluxgate:SECRET@db:5432/fluxgate)")
        }
        let url = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !url.isEmpty, !url.contains(where: \.isNewline) else {
            throw Failure(description: "\(storeFileVariable)=\(path) must hold one store URL on one line, e.g. postgres://fluxgate:SECRET@db:5432/fluxgate")
        }
        return url
    }
}
