// Commands that trace and rebuild processes run as root only. Checked before anything is
// touched: a user gets one line naming the command and why, no image directory is made and the
// target is never seized (the kernel's first EPERM, from whichever call came first, would say
// less and come later).
import Glibc

func requireRoot(_ command: String, because reason: String) throws {
    let uid = geteuid()
    guard uid == 0 else { throw CleanError("vos \(command) needs root (it runs as uid \(uid)): \(reason)") }
}
