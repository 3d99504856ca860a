// Where an image's parts live: a directory on disk, or memfds in vos's own memory (an image
// streamed between nodes is never written to a file system). Writer and reader see only this.
import VOSLinux

public protocol ImageStore: AnyObject {
    /// For messages: the directory, or what the memory image is.
    var location: String { get }
    /// Every part's size, or nil when the part does not exist.
    func size(of part: String) -> UInt64?
    /// A small part's bytes, or nil when it does not exist.
    func contents(of part: String) -> [UInt8]?
    func write(_ part: String, _ bytes: [UInt8]) throws
    func createPages(_ part: String, size: UInt64) throws -> PageFile
    func openPages(_ part: String, size: UInt64) throws -> PageFile
    /// Removes what this store created (on a failed checkpoint).
    func discard()
}
