// `vos guard` (hidden): the guardian a checkpoint starts when it will put TCP sockets into
// repair mode or cut a capsule's network (see VOSCheckpoint's Guardian). It exits quietly when
// vos says "done"; if vos dies instead, it puts both back.
import ArgumentParser
import VOSCapsule
import VOSCheckpoint
import VOSLinux

struct GuardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "guard", shouldDisplay: false)

    @Option var parent: Int32
    @Option(name: .customLong("pid")) var pids: [Int32] = []
    @Option var interface: String?

    func run() throws {
        if Guardian.awaitParent(parent) { return }
        Guardian.releaseSockets(of: pids)
        if let interface { try? CapsuleNetwork.setInterface(interface, up: true) }
    }
}
