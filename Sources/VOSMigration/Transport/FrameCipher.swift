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

    /// The sealed frame: ciphertext, then the 16-byte tag.
    mutating func seal(_ plain: [UInt8]) throws -> (ciphertext: Data, tag: Data) {
        let box = try AES.GCM.seal(plain, using: key, nonce: try nextNonce())
        return (box.ciphertext, box.tag)
    }

    mutating func open(_ sealed: UnsafeRawBufferPointer) throws -> Data {
        guard sealed.count >= 16 else { throw MigrationError("refused a frame", reason: "shorter than its authentication tag") }
        let box = try AES.GCM.SealedBox(nonce: try nextNonce(), ciphertext: UnsafeRawBufferPointer(rebasing: sealed.dropLast(16)),
                                        tag: UnsafeRawBufferPointer(rebasing: sealed.suffix(16)))
        do { return try AES.GCM.open(box, using: key) } catch {
            throw MigrationError("refused a frame", reason: "it fails authentication (altered, replayed or not from the peer)")
        }
    }
}
