// AES-256-GCM per frame, one key per direction, the nonce a counter: a frame that is altered,
// replayed, dropped or reordered fails to open, and the connection ends.
import Crypto
import Foundation

struct FrameCipher {
    let key: SymmetricKey
    private var counter: UInt64 = 0

    init(key: SymmetricKey) { self.key = key }

    private mutating func nextNonce() throws -> AES.GCM.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: counter.bigEndian) { bytes.replaceSubrange(4..<12, with: $0) }
        counter += 1
        return try AES.GCM.Nonce(data: bytes)
    }

    mutating func seal(_ plain: [UInt8]) throws -> [UInt8] {
        let box = try AES.GCM.seal(plain, using: key, nonce: try nextNonce())
        return Array(box.ciphertext) + Array(box.tag)
    }

    mutating func open(_ sealed: [UInt8]) throws -> [UInt8] {
        guard sealed.count >= 16 else { throw MigrationError("refused a frame", reason: "shorter than its authentication tag") }
        let box = try AES.GCM.SealedBox(nonce: try nextNonce(), ciphertext: sealed.dropLast(16), tag: sealed.suffix(16))
        do { return Array(try AES.GCM.open(box, using: key)) } catch {
            throw MigrationError("refused a frame", reason: "it fails authentication (altered, replayed or not from the peer)")
        }
    }
}
