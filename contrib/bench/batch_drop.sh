#!/usr/bin/env bash
# Whole send batches lost (issue #27, docs/benchmarks.md): nftables drops a
# share of the UDP datagrams to and from the receiver's port at the output
# hook, where a GSO send of many datagrams is still one packet, so batches
# go at once, small and large datagrams alike. Runs RUNS transfers with
# 1472-byte datagrams and counts those that declared a path MTU black hole
# or ended below 1472 bytes. Needs root and nft (Debian package nftables).
#
#   cargo build --release && sudo contrib/bench/batch_drop.sh
#   RUNS=150 DROP_PER_10K=500 MB=4 PORT=19300 RUDP=target/release/rudp ...
set -euo pipefail
RUDP=${RUDP:-target/release/rudp}
RUNS=${RUNS:-150}
MB=${MB:-4}
PORT=${PORT:-19300}
DROP_PER_10K=${DROP_PER_10K:-500}
[ -x "$RUDP" ] || { echo "no $RUDP: cargo build --release first" >&2; exit 2; }
command -v nft >/dev/null || { echo "needs nft (apt-get install nftables)" >&2; exit 2; }
TABLE=rudp_batch_drop_$$
WORK=$(mktemp -d)
cleanup() { nft delete table inet "$TABLE" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
head -c $((MB * 1000000)) /dev/urandom > "$WORK/file.bin"
mkdir -p "$WORK/out"
export HOME=$WORK XDG_DATA_HOME=$WORK/data XDG_CONFIG_HOME=$WORK/config
nft -f - <<NFT
table inet $TABLE {
 chain out {
  type filter hook output priority 0; policy accept;
  udp dport $PORT numgen random mod 10000 < $DROP_PER_10K drop
  udp sport $PORT numgen random mod 10000 < $DROP_PER_10K drop
 }
}
NFT
holes=0 small=0 failed=0
for i in $(seq 1 "$RUNS"); do
  rm -f "$WORK"/out/*
  "$RUDP" recv --listen 127.0.0.1:"$PORT" --out "$WORK/out/" --force --max-datagram-size 1472 >"$WORK/recv.log" 2>&1 &
  recv=$!
  sleep 0.15
  if ! "$RUDP" send "$WORK/file.bin" --to 127.0.0.1:"$PORT" --max-datagram-size 1472 \
      --stats-json "$WORK/stats.json" >"$WORK/send.log" 2>&1; then
    failed=$((failed + 1))
    echo "run $i failed: $(tail -1 "$WORK/send.log")"
    wait "$recv" || true
    continue
  fi
  wait "$recv" || true
  read -r b m < <(python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['stats']; print(s['sent']['mtu_black_holes'], s['path']['max_datagram_size'])" "$WORK/stats.json")
  [ "$b" != 0 ] && holes=$((holes + 1))
  if [ "$m" != 1472 ]; then small=$((small + 1)); echo "run $i: $b black holes, ends at $m bytes"; fi
done
echo "$RUNS transfers through $((DROP_PER_10K / 100))% batch drop: $holes declared a black hole, $small ended below 1472 bytes, $failed failed"
