import FluxCore
import PostgresNIO

/// Turns postgres-nio errors into short descriptions and SQLSTATE codes.
enum PostgresErrors {
    /// SQLSTATE 23505: a unique constraint refused a row.
    static let uniqueViolation = "23505"

    /// The SQLSTATE of a server error, `nil` for client-side errors (connection refused or lost, …).
    static func sqlState(_ error: any Error) -> String? {
        if let error = error as? PSQLError { return error.serverInfo?[.sqlState] }
        if let error = error as? PostgresTransactionError {
            for inner in [error.closureError, error.commitError, error.beginError] {
                if let inner, let state = sqlState(inner) { return state }
            }
        }
        return nil
    }

    /// One line saying what went wrong, without bound values (they may be payloads).
    static func describe(_ error: any Error) -> String {
        if let error = error as? StoreError { return error.message }
        if let error = error as? PSQLError {
            if let info = error.serverInfo {
                return "PostgreSQL: \(info[.message] ?? "error") (SQLSTATE \(info[.sqlState] ?? "?"))"
            }
            return "PostgreSQL client: \(error.code)"
        }
        if let error = error as? PostgresTransactionError {
            if let inner = error.closureError ?? error.commitError ?? error.beginError { return describe(inner) }
        }
        return "\(error)"
    }
}
