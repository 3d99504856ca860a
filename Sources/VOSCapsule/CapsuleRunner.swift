// `vos run`: a new capsule (PID, UTS, IPC, mount and time namespaces) whose init starts CMD.
import Foundation
import Glibc
import VOSCheckpoint
import VOSImage
import VOSLinux

public enum CapsuleRunner {
    public static let namespaces: NamespaceSet = [.pid, .uts, .ipc, .mount, .time]

    /// `tty`: run CMD on a pseudo-terminal of the capsule's own, reachable with `vos attach`.
    /// `network`: with `--net`, the requested address ("" for the first free one).
    /// `filesystem`: with `--fs`, a root of its own (see CapsuleFilesystem).
    public static func run(name: String, hostname: String?, command: [String], tty: Bool = false, network: String? = nil,
                           filesystem: CapsuleFilesystem? = nil, registry: CapsuleRegistry = .init()) throws -> CapsuleRecord {
        guard let first = command.first else { throw CapsuleError("no command given: vos run --name NAME -- CMD ARGS...") }
        if let fs = filesystem {
            if tty { throw CapsuleError("--fs with --tty is not supported yet") }
            try checkFilesystem(fs)
        } else {
            guard resolve(first) != nil else { throw CapsuleError("cannot run \"\(first)\": command not found") }
        }
        try registry.reserve(name)
        do {
            let exe = try ProcFile.link("/proc/self/exe")
            let host = hostname ?? name
            // Inside its own root the capsule sees its registry directory at /.vos.
            let state = filesystem == nil ? registry.directory(name) : CapsuleRoot.stateMount
            var args = ["capsule-init", "--hostname", host, "--log", state + "/output.log", "--exit-status", state + "/exit-status"]
            if let fs = filesystem {
                let layers = try CapsuleLayers.make(name, registry: registry)
                args += ["--fs-base", fs.base, "--fs-layers", layers, "--fs-state", registry.directory(name)]
                args += fs.volumes.flatMap { ["--volume", "\($0.host):\($0.path)"] }
            }
            if tty {
                let dir = registry.directory(name)
                for fifo in [CapsuleTerminal.inputPath(dir), CapsuleTerminal.outputPath(dir)] {
                    try checked("mkfifo", fifo) { mkfifo(fifo, 0o600) }
                }
                args += ["--tty-input", CapsuleTerminal.inputPath(dir), "--tty-output", CapsuleTerminal.outputPath(dir)]
            }
            let net = try network.map { try CapsuleNetwork.plan(requested: $0.isEmpty ? nil : $0, name: name, registry: registry) }
            // With a network, CMD waits until vos has configured eth0 from outside.
            let ready = registry.directory(name) + "/network-ready"
            let waiting = net == nil ? command : ["/bin/sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.01; done; exec \"$@\"", state + "/network-ready"] + command
            args += ["--"] + waiting
            let env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
            let pid = try Namespaces.spawn(net == nil ? namespaces : namespaces.union(.net), executable: exe, arguments: args, environment: env)
            if let net {
                do {
                    try CapsuleNetwork.attach(net, pid: pid, connect: true)
                    try PrivateFiles.write(ready, [])
                } catch {
                    kill(pid, SIGKILL)
                    var status: Int32 = 0
                    waitpid(pid, &status, 0)
                    throw error
                }
            }
            var record = CapsuleRecord(
                name: name, hostname: host, command: command, initPID: pid,
                pidNamespace: Namespaces.identity(of: pid, "pid") ?? "", created: Date().timeIntervalSince1970, tty: tty, ip: net?.address)
            record.network = net
            record.filesystem = filesystem
            try registry.save(record)
            return record
        } catch {
            try? registry.remove(name)
            throw error
        }
    }

    /// The base and every volume must be directories here, volumes at absolute paths.
    static func checkFilesystem(_ fs: CapsuleFilesystem) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: fs.base, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CapsuleError("the base \(fs.base) is not a directory")
        }
        for v in fs.volumes {
            guard v.path.hasPrefix("/"), !v.path.split(separator: "/").contains("..") else {
                throw CapsuleError("the volume \(v.host):\(v.path) must be mounted at an absolute path without ..")
            }
            guard FileManager.default.fileExists(atPath: v.host, isDirectory: &isDirectory) else {
                throw CapsuleError("the volume \(v.host) does not exist")
            }
        }
    }

    /// The command's path as the init will find it (PATH lookup for a bare name).
    static func resolve(_ command: String) -> String? {
        if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(command)" }.first { access($0, X_OK) == 0 }
    }
}
