#!/usr/bin/env bash
# The vOS demo: two simulated machines (network namespaces on one LAN bridge), a node daemon on
# each, a web server in a capsule on node a that keeps counting, and a client on the LAN that
# holds ONE TCP connection and keeps asking. The capsule moves live to node b; the client's
# connection and the counter carry on. Run as root: `sudo ./demo.sh`.
set -euo pipefail
cd "$(dirname "$0")"
swift build -c release --product vos >/dev/null
bin=$(swift build -c release --show-bin-path)
vos="$bin/vos"
work=$(mktemp -d /tmp/vos-demo.XXXXXX)
tag="vd$$"
net=10.77.$(( $$ % 200 ))
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for n in a b; do VOS_STATE_DIR="$work/$n/state" "$vos" stop web >/dev/null 2>&1 || true; done
    for ns in lan a b client; do ip netns del "$tag-$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$tag-$ns" -- "$@"; }

echo "== two machines and a client on one LAN ($net.0/24)"
for ns in lan a b client; do
    ip netns add "$tag-$ns"
    in_ns "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'
done
ip -n "$tag-lan" link add br0 type bridge stp_state 0 forward_delay 0
ip -n "$tag-lan" link set br0 up
ip -n "$tag-lan" link add cl type veth peer name eth0 netns "$tag-client"
ip -n "$tag-lan" link set cl master br0 up
ip -n "$tag-client" addr add "$net.250/24" dev eth0
ip -n "$tag-client" link set eth0 up
ip -n "$tag-client" link set lo up
host=1
for n in a b; do
    ip -n "$tag-lan" link add "n$n" type veth peer name up0 netns "$tag-$n"
    ip -n "$tag-lan" link set "n$n" master br0 up
    ip -n "$tag-$n" link add vos0 type bridge stp_state 0 forward_delay 0
    ip -n "$tag-$n" link set lo up
    ip -n "$tag-$n" link set up0 master vos0 up
    ip -n "$tag-$n" addr add "$net.$host/24" dev vos0
    ip -n "$tag-$n" link set vos0 up
    host=$((host + 1))
done

echo "== node daemons: a at $net.1:7100, b at $net.2:7100 joining a (mutually authenticated)"
token=$("$vos" node init --data "$work/a" --join-token)
"$vos" node init --data "$work/b" --token "$token" >/dev/null
# Each node's capsules go on its bridge vos0, whose address is the node's own on the LAN.
VOS_BRIDGE=vos0 VOS_BRIDGE_ADDRESS="$net.1/24" in_ns a "$vos" node start --data "$work/a" --name a --listen "$net.1:7100" --detach
VOS_BRIDGE=vos0 VOS_BRIDGE_ADDRESS="$net.2/24" in_ns b "$vos" node start --data "$work/b" --name b --listen "$net.2:7100" \
    --join "$net.1:7100" --detach
pids+=("$(cat "$work/a/node.pid")" "$(cat "$work/b/node.pid")")
sleep 1.5
"$vos" nodes --data "$work/a"

echo "== a web server in a capsule on node a, at $net.100: it counts requests and prints them"
cat > "$work/server.py" <<'PY'
import http.server, socketserver, sys
count = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        global count
        count += 1
        body = f"answer {count}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print(f"served {count}", flush=True)
    def log_message(self, *a): pass
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):  # no getfqdn(): the LAN has no DNS server to ask
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "web", 8080
Server(("0.0.0.0", 8080), H).serve_forever()
PY
env VOS_STATE_DIR="$work/a/state" VOS_BRIDGE=vos0 VOS_BRIDGE_ADDRESS="$net.1/24" \
    nsenter --net="/run/netns/$tag-a" -- "$vos" run --name web --net --ip "$net.100" -- python3 "$work/server.py" >/dev/null

echo "== a client on the LAN: one keep-alive connection, a request every 100 ms"
cat > "$work/client.py" <<'PY'
import http.client, sys, time
c = http.client.HTTPConnection(sys.argv[1], 8080, timeout=10)
while True:  # until the server listens
    try:
        c.connect()
        break
    except OSError:
        time.sleep(0.1)
for i in range(1, 10**6):
    c.request("GET", "/")
    r = c.getresponse()
    print(f"request {i} on local port {c.sock.getsockname()[1]}: {r.status} {r.read().decode().strip()}", flush=True)
    time.sleep(0.1)
PY
in_ns client python3 "$work/client.py" "$net.100" > "$work/client.txt" 2>&1 &
pids+=("$!")
disown "$!"
for _ in $(seq 100); do [ "$(grep -c '^request' "$work/client.txt")" -ge 10 ] && break; sleep 0.1; done
tail -n 2 "$work/client.txt" | sed 's/^/   /'

echo "== vos migrate web --to b --live"
in_ns a "$vos" migrate web --to b --live --data "$work/a"
sleep 1.5
echo "== after the move"
echo "   node a: $(VOS_STATE_DIR="$work/a/state" "$vos" ps | tail -n +2 | wc -l) capsule(s); node b:"
VOS_STATE_DIR="$work/b/state" "$vos" ps | cut -c1-100 | sed 's/^/   /'
echo "   the server's own output, now on node b: $(VOS_STATE_DIR="$work/b/state" "$vos" logs web | tail -n 1)"
tail -n 3 "$work/client.txt" | sed 's/^/   /'
python3 - "$work/client.txt" <<'PY'
import re, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("request")]
ports = {re.search(r"port (\d+)", l).group(1) for l in lines}
answers = [int(l.split("answer ")[1]) for l in lines]
ok = len(ports) == 1 and answers == list(range(1, len(answers) + 1)) and all(" 200 " in l for l in lines)
print(f"   {len(lines)} requests on {len(ports)} connection(s), answers 1..{answers[-1]}: "
      + ("one connection throughout, no error, no gap" if ok else "BROKEN"))
sys.exit(0 if ok else 1)
PY
