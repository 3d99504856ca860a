import Foundation
import VOSCheckpoint
import VOSCommands

// A checkpoint's guardian is this very program (`vos guard`).
Guardian.program = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
VOSCommand.main()
