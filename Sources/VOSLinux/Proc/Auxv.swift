// /proc/PID/auxv and the machine description an image records.
import CVOSShim

public enum Auxv {
    /// Raw (type, value) pairs, up to and including AT_NULL.
    public static func read(pid: PID) throws(SyscallError) -> [UInt64] {
        let bytes = try ProcFile.read("/proc/\(pid)/auxv")
        var words: [UInt64] = []
        var i = 0
        while i + 8 <= bytes.count {
            var w: UInt64 = 0
            for b in 0..<8 { w |= UInt64(bytes[i + b]) << (8 * UInt64(b)) }
            words.append(w)
            i += 8
        }
        return words
    }
}

public struct MachineInfo: Codable, Sendable, Equatable {
    public var kernelRelease: String
    public var architecture: String
    public var cpuModel: String
    public var cpuFeatures: [String]
    /// The xsave components the CPU supports (cpuid 0xD.0: XCR0's possible bits) and the size
    /// of their xsave area; absent in images of older versions.
    public var xsaveFeatures: UInt64?
    public var xsaveSize: UInt32?

    public init(kernelRelease: String, architecture: String, cpuModel: String, cpuFeatures: [String],
                xsaveFeatures: UInt64? = nil, xsaveSize: UInt32? = nil) {
        self.kernelRelease = kernelRelease
        self.architecture = architecture
        self.cpuModel = cpuModel
        self.cpuFeatures = cpuFeatures
        self.xsaveFeatures = xsaveFeatures
        self.xsaveSize = xsaveSize
    }

    /// This machine, from uname and /proc/cpuinfo (the first CPU's model and flags).
    public static func current() -> MachineInfo {
        let info = (try? ProcFile.text("/proc/cpuinfo")) ?? ""
        var model = "unknown", flags: [String] = []
        for line in info.split(separator: "\n") {
            if line.hasPrefix("model name"), model == "unknown", let c = line.firstIndex(of: ":") {
                model = line[line.index(after: c)...].trimmingCharacters(in: " \t")
            }
            if line.hasPrefix("flags"), flags.isEmpty, let c = line.firstIndex(of: ":") {
                flags = line[line.index(after: c)...].split(separator: " ").map(String.init)
            }
        }
        var r: [UInt32] = [0, 0, 0, 0]
        vos_cpuid_count(0xd, 0, &r)
        return MachineInfo(kernelRelease: Kernel.release(), architecture: Kernel.machine(), cpuModel: model, cpuFeatures: flags,
                           xsaveFeatures: UInt64(r[0]) | UInt64(r[3]) << 32, xsaveSize: r[2])
    }
}
