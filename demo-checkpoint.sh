#!/usr/bin/env bash
# The vOS demo: start a live program, checkpoint it, bring it back from the image, and show it
# continuing exactly where it stopped. Run as root: `sudo ./demo.sh`.
set -euo pipefail
cd "$(dirname "$0")"
swift build -c release --product vos >/dev/null
swift build -c release --product vos-test-counter >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d /tmp/vos-demo.XXXXXX)
out="$work/counter.txt"
pid=""
restored=""
cleanup() {
    for p in $pid $restored; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a counter that appends n=<k> to $out every 10 ms"
# Start it detached with only its standard streams (no fd of this shell leaks into it).
(
    for fd in /proc/self/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    exec setsid "$bin/vos-test-counter" "$out" </dev/null >/dev/null 2>&1
) &
pid=$!
disown "$pid"
sleep 0.5
echo "   pid $pid, last line: $(tail -n1 "$out")"

echo "== vos checkpoint --pid $pid --image $work/image"
"$bin/vos" checkpoint --pid "$pid" --image "$work/image"
echo "   the process is gone: $(kill -0 "$pid" 2>/dev/null && echo still there || echo yes); last line: $(tail -n1 "$out")"
sleep 0.5
echo "   half a second later, still $(tail -n1 "$out"): nothing runs while it is an image"

echo "== vos inspect $work/image (excerpt)"
"$bin/vos" inspect "$work/image" | grep -E '^(image|machine|process|threads|  tid|memory|files|  fd)' | cut -c1-150

echo "== vos restore $work/image"
"$bin/vos" restore "$work/image" --pidfile "$work/pid"
restored=$(cat "$work/pid")
sleep 0.5
echo "   restored pid $restored is running: $(tr '\0' ' ' < /proc/$restored/cmdline)"
echo "   last line now: $(tail -n1 "$out")"
python3 - "$out" <<'PY'
import sys
values = [int(l.split("=")[1]) for l in open(sys.argv[1]) if l.startswith("n=")]
ok = all(v == i for i, v in enumerate(values))
print(f"   {len(values)} lines, n=0..{values[-1]}: " + ("continuous, no gap and no repeat across the restore" if ok else "GAP OR REPEAT"))
sys.exit(0 if ok else 1)
PY
