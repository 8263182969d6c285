import DaemonAPI
import Foundation
import HavelCore
import Hummingbird

/// An error answered as `{ "error": "message" }` with its status code.
struct APIError: Error, HTTPResponseError, Sendable {
    var status: HTTPResponse.Status
    var message: String
    var diagnostics: [String]?

    init(_ status: HTTPResponse.Status, _ message: String, diagnostics: [String]? = nil) {
        self.status = status
        self.message = message
        self.diagnostics = diagnostics
    }

    /// Havel's own errors by code: what the client got wrong is 4xx, the rest 500.
    init(_ error: HavelError) {
        let status: HTTPResponse.Status = switch error.code {
        case .notFound: .notFound
        case .conflict: .conflict
        case .invalidArgument, .invalidProject, .malformedXML, .unsupported: .badRequest
        default: .internalServerError
        }
        self.init(status, error.description, diagnostics: error.diagnostics.isEmpty ? nil : error.diagnostics.map(\.description))
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response.json(ErrorResponse(error: message, diagnostics: diagnostics), status: status)
    }
}

extension Response {
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? DaemonJSON.encoder().encode(value)) ?? Data(#"{"error":"cannot encode the response"}"#.utf8)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Turns every error into the JSON error body: APIError as it is, HavelError by its code,
/// Hummingbird's HTTPError with its status, anything else as 500.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HavelError {
            throw APIError(error)
        } catch let error as HTTPError {
            throw APIError(error.status, error.body ?? Self.text(for: error.status, request: request))
        } catch let error as any HTTPResponseError {
            throw APIError(error.status, Self.text(for: error.status, request: request))
        } catch {
            throw APIError(.internalServerError, "internal error: \(error)")
        }
    }

    static func text(for status: HTTPResponse.Status, request: Request) -> String {
        status == .notFound ? "no such route: \(request.method) \(request.uri.path)" : status.reasonPhrase
    }
}

/// Every route behind it needs `Authorization: Bearer <token>`.
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              ConstantTime.equal(Array(header.utf8.dropFirst(7)), Array(token.utf8)) else {
            throw APIError(.unauthorized, request.headers[.authorization] == nil
                           ? "this call needs the API token (Authorization: Bearer <token>)" : "wrong API token")
        }
        return try await next(request, context)
    }
}

enum ConstantTime {
    /// Compares in time independent of where the first difference is (for secrets: tokens, CSRF values).
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
