#!/usr/bin/env bash
# A shallow bottleneck on a real kernel path (issue #27, docs/benchmarks.md):
# two network namespaces joined by a veth pair, Linux tbf at RATE with a
# queue of LIMIT bytes (default 100mbit and 15140 bytes: ten 1514-byte
# frames) on each side, and `rudp proxy` after the bottleneck adding the
# delay (this kernel has no netem): `rudp send` in namespace A, the proxy
# and `rudp recv` in namespace B. Prints each transfer's summary line (goodput,
# packets lost) and what tbf dropped. Needs root, iproute2 and tc.
#
#   cargo build --release && sudo contrib/bench/shallow_bottleneck.sh
#   RUNS=5 DELAY=5800us RATE=100mbit LIMIT=15140 MB=60 RUDP=target/release/rudp ...
set -euo pipefail
RUDP=${RUDP:-target/release/rudp}
RUNS=${RUNS:-3}
MB=${MB:-60}
RATE=${RATE:-100mbit}
LIMIT=${LIMIT:-15140}
DELAY=${DELAY:-5800us}
[ -x "$RUDP" ] || { echo "no $RUDP: cargo build --release first" >&2; exit 2; }
A=rudp-tbf-a-$$ B=rudp-tbf-b-$$
WORK=$(mktemp -d)
cleanup() { ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ip netns add "$A"
ip netns add "$B"
ip link add tbfa$$ type veth peer name tbfb$$
ip link set tbfa$$ netns "$A"
ip link set tbfb$$ netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev tbfa$$
ip -n "$B" addr add 10.77.0.2/24 dev tbfb$$
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set tbfa$$ up
ip -n "$B" link set tbfb$$ up
ip netns exec "$B" tc qdisc add dev tbfb$$ root tbf rate "$RATE" burst 15140 limit "$LIMIT"
head -c $((MB * 1000000)) /dev/urandom > "$WORK/file.bin"
mkdir -p "$WORK/out"
export HOME=$WORK XDG_DATA_HOME=$WORK/data XDG_CONFIG_HOME=$WORK/config
echo "tbf $RATE, queue $LIMIT bytes, $DELAY each way after it, $MB MB per transfer"
for i in $(seq 1 "$RUNS"); do
  # A fresh qdisc each run, so that its drop counter starts at zero.
  ip netns exec "$A" tc qdisc del dev tbfa$$ root 2>/dev/null || true
  ip netns exec "$A" tc qdisc add dev tbfa$$ root tbf rate "$RATE" burst 15140 limit "$LIMIT"
  ip netns exec "$B" "$RUDP" recv --listen 127.0.0.1:9100 --out "$WORK/out/" --force >"$WORK/recv.log" 2>&1 &
  recv=$!
  ip netns exec "$B" "$RUDP" proxy --listen 10.77.0.2:9200 --to 127.0.0.1:9100 --delay "$DELAY" --seed "$i" >/dev/null 2>&1 &
  proxy=$!
  sleep 0.7
  ip netns exec "$A" "$RUDP" send "$WORK/file.bin" --to 10.77.0.2:9200 2>&1 | grep -E "^sent|rror" | sed 's/; sha256.*//' || true
  wait "$recv" || echo "recv failed: $(tail -1 "$WORK/recv.log")"
  kill "$proxy" 2>/dev/null || true
  wait "$proxy" 2>/dev/null || true
  echo "  tbf dropped $(ip netns exec "$A" tc -s qdisc show dev tbfa$$ | grep -o 'dropped [0-9]*' | head -1 | cut -d' ' -f2) datagrams at the bottleneck"
done
