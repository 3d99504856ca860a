// A capsule's own root, made in its new mount namespace: an overlay (base below, the capsule's
// upper layer above), the capsule's registry directory at /.vos (its log and exit status), its
// volumes, /dev and /sys from the host; then pivot_root into it and the old root detached.
// `apply()` makes raw calls only, on C strings prepared in advance: a restore's root stub runs
// it between clone3 and exec, where the child of a multithreaded vos may not allocate.
import CVOSShim
import Glibc
import VOSImage
import VOSLinux

public final class CapsuleRoot {
    /// Where the capsule's registry directory appears inside it.
    public static let stateMount = "/.vos"

    private enum Kind { case mount, mkdir, chdir, pivotRoot, detachOld }
    private struct Step {
        var kind: Kind
        var source: UnsafeMutablePointer<CChar>?, target: UnsafeMutablePointer<CChar>?
        var type: UnsafeMutablePointer<CChar>?, data: UnsafeMutablePointer<CChar>?
        var flags: UInt
        var what: String
    }
    private let steps: ContiguousArray<Step>
    private let dot = strdup(".")!, slash = strdup("/")!

    /// `layers`: the host directory holding `upper`, `work` and `root` (the overlay's mount
    /// point), made by `CapsuleLayers`; `state`: the capsule's registry directory.
    public init(_ fs: CapsuleFilesystem, layers: String, state: String) {
        let root = layers + "/root"
        var s: [Step] = []
        func add(_ kind: Kind, _ source: String? = nil, _ target: String? = nil, type: String? = nil, data: String? = nil,
                 flags: UInt = 0, _ what: String) {
            s.append(Step(kind: kind, source: source.map { strdup($0) }, target: target.map { strdup($0) },
                          type: type.map { strdup($0) }, data: data.map { strdup($0) }, flags: flags, what: what))
        }
        // Nothing made here may propagate to the host, and pivot_root wants no shared mounts.
        add(.mount, nil, "/", flags: UInt(MS_REC | MS_PRIVATE), "mount(/, MS_REC|MS_PRIVATE)")
        let options = "lowerdir=\(fs.base),upperdir=\(layers)/upper,workdir=\(layers)/work"
        add(.mount, "overlay", root, type: "overlay", data: options, "mount(overlay, \(root), \(options))")
        add(.mkdir, nil, root + Self.stateMount, "mkdir(\(Self.stateMount))")
        add(.mount, state, root + Self.stateMount, flags: UInt(MS_BIND), "mount(\(state) on \(Self.stateMount), MS_BIND)")
        for v in fs.volumes {
            add(.mkdir, nil, root + v.path, "mkdir(\(v.path)) for the volume \(v.host)")
            add(.mount, v.host, root + v.path, flags: UInt(MS_BIND | MS_REC), "mount(\(v.host) on \(v.path), MS_BIND|MS_REC)")
        }
        for host in ["/dev", "/sys"] {
            add(.mkdir, nil, root + host, "mkdir(\(host))")
            add(.mount, host, root + host, flags: UInt(MS_BIND | MS_REC), "mount(\(host), MS_BIND|MS_REC)")
        }
        add(.chdir, nil, root, "chdir(\(root))")
        add(.pivotRoot, nil, nil, "pivot_root(\(root))")
        add(.detachOld, nil, nil, "umount2(old root, MNT_DETACH)")
        steps = ContiguousArray(s)
    }

    deinit {
        for s in steps { for p in [s.source, s.target, s.type, s.data] { free(p) } }
        free(dot)
        free(slash)
    }

    /// Runs every step in the calling process; 0, or the 1-based number of the step that failed
    /// (errno tells why).
    public func apply() -> Int {
        for i in steps.indices {
            let s = steps[i]
            let r: Int32
            switch s.kind {
            case .mount: r = mount(s.source, s.target, s.type, s.flags, s.data)
            case .mkdir:
                r = mkdir(s.target!, 0o755)
                if r != 0 && errno == EEXIST { continue }
            case .chdir: r = chdir(s.target!)
            case .pivotRoot:  // pivot_root(".", "."): the old root stays stacked below, detached next
                r = Int32(truncatingIfNeeded: vos_syscall6(155, Int(bitPattern: dot), Int(bitPattern: dot), 0, 0, 0, 0))
            case .detachOld:
                r = umount2(dot, Int32(MNT_DETACH))
                if r == 0 && chdir(slash) != 0 { return i + 1 }
            }
            if r != 0 { return i + 1 }
        }
        return 0
    }

    /// What step `n` (from `apply()`) did.
    public func describe(step n: Int) -> String { n >= 1 && n <= steps.count ? steps[n - 1].what : "its root" }
}
