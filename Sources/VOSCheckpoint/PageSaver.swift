// How a frozen process's pages get into its image. By default they are copied into a page file
// of the image (`MemoryDump`); a live migration plugs in its own saver, which sends only what
// the destination does not already hold from the pre-copy rounds.
import VOSImage
import VOSLinux

public protocol PageSaver: AnyObject {
    /// Called with the process frozen. `records` hold its layout (runs planned for a page file
    /// of their own, shared objects saved already); the saver sets the runs' final file
    /// offsets, stores or sends the pages, and registers the page file `pagesName` with the
    /// writer. Returns the bytes it stored.
    func save(hostPID: PID, savedPID: PID, memory: inout MemoryDump, writer: ImageWriter, pagesName: String) throws -> UInt64
}

/// The default: every stored page copied into the image's page file.
public final class ImagePageSaver: PageSaver {
    public init() {}

    public func save(hostPID: PID, savedPID: PID, memory: inout MemoryDump, writer: ImageWriter, pagesName: String) throws -> UInt64 {
        let pageFile = try writer.createPageFile(name: pagesName, size: memory.totalBytes)
        let chunks = try step("copying memory of pid \(hostPID)") { try memory.copy(pid: hostPID, into: pageFile) }
        writer.addPageFile(name: pagesName, size: memory.totalBytes, chunks: chunks)
        return memory.totalBytes
    }
}
