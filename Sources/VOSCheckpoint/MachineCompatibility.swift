// Whether this machine can run what an image was saved on. A program that used AVX-512 (or any
// instruction its libraries picked at start-up from cpuid) dies with SIGILL on a CPU without
// it, and a thread's saved vector state needs the same xsave components here. A different
// kernel major version is only worth a warning.
import VOSImage
import VOSLinux

public enum MachineCompatibility {
    /// cpuinfo flags that name instructions or register state user code may use; flags about
    /// the platform (constant_tsc, hypervisor, bugs...) differ between machines harmlessly.
    static let userFeatures: Set<String> = [
        "sse", "sse2", "pni", "ssse3", "sse4_1", "sse4_2", "sse4a", "popcnt", "abm", "cx8", "cx16", "cmov", "movbe",
        "avx", "avx2", "fma", "fma4", "f16c", "bmi1", "bmi2", "adx", "aes", "pclmulqdq", "sha_ni", "vaes", "vpclmulqdq",
        "gfni", "rdrand", "rdseed", "rdpid", "xsave", "xsaveopt", "xsavec", "xsaves", "xgetbv1", "clflushopt", "clwb",
        "clzero", "erms", "fsrm", "mmx", "mmxext", "3dnowprefetch", "lahf_lm", "lm", "pku", "ospke", "rtm", "hle",
        "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512ifma", "avx512vbmi", "avx512_vbmi2",
        "avx512_vnni", "avx512_bitalg", "avx512_vpopcntdq", "avx512_bf16", "avx512_fp16", "avx512_vp2intersect",
        "avx_vnni", "avx_vnni_int8", "avx_ifma", "avx_ne_convert", "amx_tile", "amx_int8", "amx_bf16", "amx_fp16",
        "movdiri", "movdir64b", "serialize", "waitpkg", "cldemote", "wbnoinvd", "tsxldtrk", "user_shstk", "ibt",
    ]

    /// xsave components by XCR0 bit, with the cpuinfo flag that `--ignore-cpu` names them by.
    static let xsaveComponents: [(bit: Int, name: String, flag: String)] = [
        (2, "AVX (YMM upper halves)", "avx"), (5, "AVX-512 opmask", "avx512f"), (6, "AVX-512 ZMM upper halves", "avx512f"),
        (7, "AVX-512 ZMM16-31", "avx512f"), (9, "PKRU", "pku"), (11, "CET user", "user_shstk"),
        (17, "AMX tile config", "amx_tile"), (18, "AMX tile data", "amx_tile"),
    ]

    /// Throws when the image needs a CPU feature or xsave component this machine lacks (unless
    /// `ignoring` names it); returns warnings otherwise.
    public static func check(_ image: ImageReader, here: MachineInfo = .current(), ignoring: Set<String> = []) throws -> [String] {
        let saved = image.manifest.machine
        guard saved.architecture == here.architecture else {
            throw CheckpointError("cannot restore the image at \(image.directory)",
                                  reason: "it was saved on \(saved.architecture), this machine is \(here.architecture)")
        }
        let have = Set(here.cpuFeatures)
        var missing = saved.cpuFeatures.filter { userFeatures.contains($0) && !have.contains($0) && !ignoring.contains($0) }
        if let was = saved.xsaveFeatures, let now = here.xsaveFeatures {
            for c in xsaveComponents where was & (1 << c.bit) != 0 && now & (1 << c.bit) == 0 && !ignoring.contains(c.flag) {
                if !missing.contains(c.flag) { missing.append(c.flag) }
            }
        }
        if !missing.isEmpty {
            let unique = deduplicated(missing)
            throw CheckpointError(
                "cannot restore the image at \(image.directory)",
                reason: "it was saved on a CPU with \(unique.joined(separator: ", ")), which this machine (\(here.cpuModel)) lacks: "
                    + "the program may have chosen code that uses \(unique.count == 1 ? "it" : "them") and would die with SIGILL. "
                    + "If it does not, pass " + unique.map { "--ignore-cpu \($0)" }.joined(separator: " "))
        }
        var warnings: [String] = []
        if major(saved.kernelRelease) != major(here.kernelRelease) {
            warnings.append("the image was saved on Linux \(saved.kernelRelease), this is \(here.kernelRelease): kernel interfaces the program uses may behave differently")
        }
        return warnings
    }

    static func major(_ release: String) -> Substring { release.split(separator: ".").first ?? "" }

    /// Order-keeping de-duplication.
    static func deduplicated(_ names: [String]) -> [String] {
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }
}
