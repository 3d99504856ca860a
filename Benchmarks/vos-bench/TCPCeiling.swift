// TCP over loopback between two threads of this process, 1 MiB send() calls: the link ceiling
// a migration over the network is compared with.
import Foundation
import Glibc
import VOSLinux

enum TCPCeiling {
    /// One run per element: from connect to the receiver's 1-byte acknowledgement of the last byte.
    static func measure(runs: Int, bytes: Int) throws -> [Double] {
        try (0..<runs).map { _ in try once(bytes: bytes) }
    }

    static func once(bytes: Int) throws -> Double {
        let listener = try checked("socket", "TCP listener") {
            socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0  // any free port; read back below
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { a in
            try a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                try checked("bind", "127.0.0.1") { bind(listener, sa, length) }
                try checked("listen", "127.0.0.1") { listen(listener, 1) }
                try checked("getsockname", "listener") { getsockname(listener, sa, &length) }
            }
        }

        // The receiver: accept, drain `bytes`, acknowledge with one byte.
        let done = DispatchSemaphore(value: 0)
        // Written by the receiver before it signals `done`, read after `done.wait()`.
        final class Outcome: @unchecked Sendable { var error: Error? }
        let outcome = Outcome()
        let receiver = Thread {
            defer { done.signal() }
            do {
                let s = try checked("accept", "listener") { accept(listener, nil, nil) }
                defer { close(s) }
                let buffer = try Buffer(count: mebibyte, fill: 0)
                var got = 0
                while got < bytes {
                    let n = try checked("recv", "loopback") { recv(s, buffer.base, mebibyte, 0) }
                    guard n > 0 else { throw BenchError("loopback connection closed after \(got) bytes") }
                    got += n
                }
                var ack: UInt8 = 1
                try checked("send", "loopback ack") { send(s, &ack, 1, 0) }
            } catch {
                outcome.error = error
            }
        }
        receiver.start()

        let s = try checked("socket", "TCP sender") {
            socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        defer { close(s) }
        let buffer = try Buffer(count: mebibyte, fill: 6)
        let elapsed: Double
        do {
            elapsed = try seconds {
                _ = try withUnsafePointer(to: &address) { a in
                    try a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                        try checked("connect", "127.0.0.1") {
                            connect(s, sa, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                }
                var sent = 0
                while sent < bytes {
                    let n = try checked("send", "loopback") {
                        send(s, buffer.base + (sent % mebibyte), min(mebibyte - sent % mebibyte, bytes - sent), 0)
                    }
                    sent += n
                }
                var ack: UInt8 = 0
                let n = try checked("recv", "loopback ack") { recv(s, &ack, 1, Int32(MSG_WAITALL)) }
                guard n == 1 else { throw BenchError("loopback receiver did not acknowledge") }
            }
        } catch {
            // Wake a receiver still blocked in accept() or recv() before waiting for it.
            shutdown(listener, Int32(SHUT_RDWR))
            shutdown(s, Int32(SHUT_RDWR))
            done.wait()
            throw error
        }
        done.wait()
        if let e = outcome.error { throw e }
        return elapsed
    }
}
