// `VOS_DIE_AT=point`: vos kills itself with SIGKILL at that point, as an operator's `kill -9`
// would, so tests can show what a target is left with at that very moment.
import Glibc

public enum DiePoint {
    private static let wanted: String? = getenv("VOS_DIE_AT").map { String(cString: $0) }

    public static func here(_ point: String) {
        if wanted == point { _ = kill(getpid(), SIGKILL) }
    }
}
