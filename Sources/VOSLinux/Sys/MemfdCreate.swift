// memfd_create(2) through the raw syscall (glibc 2.36's wrapper is not imported into Swift).
import CVOSShim
import Glibc

public enum MemfdCreate {
    public static let cloexec: UInt32 = 1, allowSealing: UInt32 = 2

    public static func create(_ name: String, flags: UInt32 = cloexec) throws(SyscallError) -> Int32 {
        try checked("memfd_create", name) {
            Int32(truncatingIfNeeded: name.withCString { vos_syscall6(319, Int(bitPattern: $0), Int(flags), 0, 0, 0, 0) })
        }
    }
}
