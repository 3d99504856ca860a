// Parsers of /proc text, fed captured and hostile input.
import Testing
import VOSLinux

struct ProcParserTests {
    static let smaps = """
        55e0a5c00000-55e0a5c01000 r-xp 00001000 fe:01 1234567                    /usr/bin/prog with space
        Size:                  4 kB
        Rss:                   4 kB
        VmFlags: rd ex mr mw me sd
        7ffd1c3a1000-7ffd1c3c2000 rw-p 00000000 00:00 0                          [stack]
        Size:                132 kB
        VmFlags: rd wr mr mw me gd ac
        7ffd1c3f5000-7ffd1c3f7000 r-xp 00000000 00:00 0                          [vdso]
        VmFlags: rd ex mr mw me de sd
        7f0000000000-7f0000001000 rw-s 00000000 00:01 42                         /dev/zero (deleted)
        VmFlags: rd wr sh mr mw me ms sd

        """

    @Test func parsesSmaps() {
        let r = MemoryMap.parse(smaps: Self.smaps)
        #expect(r.count == 4)
        #expect(r[0].start == RemoteAddress(0x55e0_a5c0_0000) && r[0].offset == 0x1000 && r[0].inode == 1_234_567)
        #expect(r[0].path == "/usr/bin/prog with space" && r[0].isExecutable && !r[0].isWritable && r[0].isFile)
        #expect(r[1].path == "[stack]" && r[1].hasFlag("gd") && r[1].pageCount == 33)
        #expect(r[2].isSpecial)
        #expect(r[3].isShared && r[3].isDeletedFile)
    }

    @Test func ignoresGarbageInSmaps() {
        #expect(MemoryMap.parse(smaps: "not a map\nzz-yy rw-p\n\u{0}\u{1}").isEmpty)
    }

    @Test func parsesStatWithParensInName() throws {
        let fields = (3...52).map { String($0) }.joined(separator: " ")
        let s = try ProcStat(text: "42 (a (weird) name) S " + fields.dropFirst(2))
        #expect(s.comm == "a (weird) name")
        #expect(s.state == "S")
        #expect(s.number(26) == 26 && s.number(51) == 51)
    }

    @Test func rejectsShortStat() {
        #expect(throws: ParseError.self) { try ProcStat(text: "42 (x) S 1 2") }
        #expect(throws: ParseError.self) { try ProcStat(text: "no parens") }
    }

    @Test func parsesLimits() {
        let text = """
            Limit                     Soft Limit           Hard Limit           Units
            Max cpu time              unlimited            unlimited            seconds
            Max core file size        0                    unlimited            bytes
            Max open files            512                  1048576              files

            """
        let l = Limits.parse(text)
        #expect(l.count == 3)
        #expect(l[0].resource == 0 && l[0].soft == .max)
        #expect(l[1].resource == 4 && l[1].soft == 0 && l[1].hard == .max)
        #expect(l[2].resource == 7 && l[2].soft == 512 && l[2].hard == 1_048_576)
    }

    @Test func parsesFDInfo() {
        let epoll = FDInfo(text: "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\ntfd:        5 events:       19 data:                7  pos:0 ino:3fa sdev:d\n")
        #expect(epoll.flags == 0o2000002)
        #expect(epoll.epollTargets.count == 1)
        #expect(epoll.epollTargets[0].fd == 5 && epoll.epollTargets[0].events == 0x19 && epoll.epollTargets[0].data == 7)
        let file = FDInfo(text: "pos:\t1234\nflags:\t0102001\n")
        #expect(file.position == 1234)
    }
}
