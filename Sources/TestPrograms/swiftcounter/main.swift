// A stock Swift program for the tests: appends "n=<k>" to the file named by its first argument
// every 10 ms, through Foundation, forever.
import Foundation

guard CommandLine.arguments.count > 1, let out = FileHandle(forWritingAtPath: CommandLine.arguments[1]) else {
    FileHandle.standardError.write(Data("usage: vos-test-swiftcounter FILE (the file must exist)\n".utf8))
    exit(2)
}
out.seekToEndOfFile()
var n = 0
while true {
    out.write(Data("n=\(n)\n".utf8))
    n += 1
    Thread.sleep(forTimeInterval: 0.01)
}
