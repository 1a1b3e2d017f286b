import ArgumentParser
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Checks, before the store is opened, that `serve` can listen where it is told to, and says in plain words why not
/// (the bind error alone reads `bind(descriptor:ptr:bytes:): Address already in use (errno: 98)`, after the store
/// was opened for nothing).
enum ListenAddressCheck {
    static func check(host: String, port: Int) async throws {
        guard port != 0 else { return }
        do {
            let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port).get()
            try await probe.close()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw ValidationError("port \(port) on \(host) is in use: another program (or another fluxgate) listens there; stop it, or pick another --port")
        } catch let error as IOError where error.errnoCode == EADDRNOTAVAIL {
            throw ValidationError("\(host) is not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of its interfaces' addresses for --host")
        } catch let error as IOError where error.errnoCode == EACCES {
            throw ValidationError("port \(port) needs privileges to listen on; use a port above 1023 (and a proxy in front), or grant CAP_NET_BIND_SERVICE")
        } catch let error as SocketAddressError {
            throw ValidationError("--host \(host) is not an address fluxgate can listen on (\(error))")
        }
    }
}
