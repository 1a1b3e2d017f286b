import FluxCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOHTTP1

/// A request refused by access control: `401` (no or bad token) or `403` (the token lacks the scope).
struct AccessDenied: Error {
    var response: GatewayResponse

    static func unauthorized(_ message: String, invalidToken: Bool) -> AccessDenied {
        // RFC 6750 §3: the challenge names the error when a token was given.
        let challenge = invalidToken ? "Bearer realm=\"fluxgate\", error=\"invalid_token\"" : "Bearer realm=\"fluxgate\""
        return AccessDenied(response: .error(.unauthorized, "unauthorized", message, headers: ["WWW-Authenticate": challenge]))
    }

    static func forbidden(_ message: String) -> AccessDenied {
        AccessDenied(
            response: .error(
                .forbidden, "forbidden", message, headers: ["WWW-Authenticate": "Bearer realm=\"fluxgate\", error=\"insufficient_scope\""]
            )
        )
    }
}

/// What a route needs from the caller's token.
enum RequiredAccess {
    case read
    case write
    case metrics
    /// Fetching, settling and inspecting consumer groups (`groups`).
    case consumeGroups
    /// Creating, changing, deleting groups and replaying parked events (`groups:admin`).
    case administerGroups
}

extension GatewayRequest {
    /// The bearer token: `Authorization: Bearer …`, else the `access_token` query parameter (RFC 6750 §2.3; the only
    /// way for a browser's WebSocket or EventSource). `nil` when neither is given.
    var bearerToken: String? {
        if let authorization = headers.first(name: "Authorization") {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return parts[1].trimmingSpaces()
            }
            if let credentials = basicCredentials { return credentials.password }
        }
        return queryValue("access_token")
    }

    /// `Authorization: Basic` (RFC 7617), for clients that cannot send a bearer token but put credentials in the URL
    /// (`http://feed:TOKEN@host/events`: Go's HTTP client, the original flux consumer): the password is the token.
    /// `nil` without such a header, or when it is malformed or its password empty.
    var basicCredentials: (user: String, password: String)? {
        guard let authorization = headers.first(name: "Authorization") else { return nil }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic", parts[1].utf8.count <= 8192,
            let decoded = Data(base64Encoded: parts[1].trimmingSpaces()),
            let text = String(data: decoded, encoding: .utf8),
            let colon = text.firstIndex(of: ":")
        else { return nil }
        let password = String(text[text.index(after: colon)...])
        return password.isEmpty ? nil : (String(text[..<colon]), password)
    }

    /// The request target with an `access_token` query value replaced by `REDACTED`: what logs may show.
    public var redactedURI: String {
        guard let range = uri.range(of: "access_token=") else { return uri }
        var redacted = String(uri[..<range.upperBound]) + "REDACTED"
        if let end = uri[range.upperBound...].firstIndex(where: { $0 == "&" || $0 == "#" }) {
            redacted += GatewayRequest(method: method, uri: String(uri[end...]), headers: [:], body: body).redactedURI
        }
        return redacted
    }
}

extension GatewayRouter {
    /// The caller's grant for a route that needs `access`; `.unrestricted` when the gateway has no access control.
    func authorize(_ request: GatewayRequest, for access: RequiredAccess) async throws(AccessDenied) -> AccessGrant {
        guard let accessControl = configuration.accessControl else { return .unrestricted }
        guard let token = request.bearerToken, !token.isEmpty else {
            throw .unauthorized(
                "this gateway needs a bearer token: send Authorization: Bearer TOKEN (or ?access_token=TOKEN on a WebSocket or EventSource URL)",
                invalidToken: false
            )
        }
        let grant: AccessGrant
        switch await accessControl.authenticate(token) {
        case .success(let granted): grant = granted
        case .failure(let rejection): throw .unauthorized(rejection.description, invalidToken: true)
        }
        switch access {
        case .read where grant.read == .none:
            throw .forbidden("the token of \(grant.subject) has no read scope; reading needs read or read:AGGREGATE_NAME")
        case .write where grant.write == .none:
            throw .forbidden("the token of \(grant.subject) has no write scope; appending needs write or write:AGGREGATE_NAME")
        case .metrics where !grant.metrics:
            throw .forbidden("the token of \(grant.subject) has no metrics scope")
        case .consumeGroups where !grant.consumeGroups && !grant.administerGroups:
            throw .forbidden("the token of \(grant.subject) has no groups scope; consumer groups need groups (members) or groups:admin")
        case .administerGroups where !grant.administerGroups:
            throw .forbidden("the token of \(grant.subject) has no groups:admin scope; changing consumer groups needs it")
        default:
            return grant
        }
    }

    /// Narrows a read filter to the aggregates the grant may read: a filter without `aggregate_name` gets the
    /// allowed names; a filter naming others is refused.
    func restrict(_ filter: EventFilter, to grant: AccessGrant) throws(AccessDenied) -> EventFilter {
        guard case .only(let allowed) = grant.read else { return filter }
        var filter = filter
        if filter.aggregateNames.isEmpty {
            filter.aggregateNames = allowed
        } else if !filter.aggregateNames.isSubset(of: allowed) {
            let refused = filter.aggregateNames.subtracting(allowed).sorted().joined(separator: ", ")
            throw .forbidden("the token of \(grant.subject) may not read aggregate_name \(refused); it may read \(allowed.sorted().joined(separator: ", "))")
        }
        return filter
    }

    /// `Cache-Control` of a response that never changes: `public` on an open gateway, `private` when a token was needed
    /// (a shared cache must not serve it to callers without one).
    var immutableCacheControl: String {
        configuration.accessControl == nil ? "public, max-age=31536000, immutable" : "private, max-age=31536000, immutable"
    }
}
