// Where each pre-copied page lives in the destination's page file of a process: slots given
// out in the order pages first arrive. Both ends keep the same table by placing the same
// ranges in the same order, so the source can write the final image's page runs (address →
// file offset) without asking, and nothing is moved at the freeze.
import VOSLinux

struct PageSlots {
    private var slots: [UInt64: UInt64] = [:]
    private(set) var count: UInt64 = 0

    struct Placement {
        var address: UInt64
        var slot: UInt64
        var pages: UInt64
    }

    /// Places `pages` pages from `address`, giving new pages the next free slots; returns the
    /// pieces that are contiguous both in memory and in the file.
    mutating func place(address: UInt64, pages: UInt64) -> [Placement] {
        var out: [Placement] = []
        for i in 0..<pages {
            let a = address + i * pageSize
            let slot: UInt64
            if let s = slots[a] { slot = s } else {
                slot = count
                slots[a] = slot
                count += 1
            }
            if var last = out.last, last.address + last.pages * pageSize == a, last.slot + last.pages == slot {
                last.pages += 1
                out[out.count - 1] = last
            } else {
                out.append(Placement(address: a, slot: slot, pages: 1))
            }
        }
        return out
    }

    func slot(of address: UInt64) -> UInt64? { slots[address] }
}

/// A batch of pages of one process: ranges (address, page count) and their bytes, in order.
struct PagesHeader: Codable {
    var pid: Int32
    var ranges: [[UInt64]]
}
