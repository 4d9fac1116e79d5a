#!/usr/bin/env bash
# Several `rudp server` processes behind nginx's UDP load balancer (the
# stream module), all on loopback, then many month clients through it.
# docs/deploy.md explains the setup and what breaks it.
#
#   contrib/lb/nginx-udp.sh [--servers N] [--clients N] [--port P] [--rudp PATH]
#
# Without --rudp it first builds rudp (cargo build --release) and uses that.
# Needs nginx with the stream module (Debian: apt-get install nginx-core
# libnginx-mod-stream). Prints how many sessions each server served and
# whether every client got its answers; exits non-zero if one did not.
set -euo pipefail

servers=3
clients=200
port=9100
rudp=""
while [ $# -gt 0 ]; do
  case "$1" in
    --servers) servers="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --rudp) rudp="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/../.."
if [ -z "$rudp" ]; then
  echo "building rudp (cargo build --release); --rudp PATH uses a binary you already have" >&2
  cargo build --release --quiet --bin rudp
  rudp=target/release/rudp
fi
command -v nginx >/dev/null || { echo "error: nginx is not installed (apt-get install nginx-core libnginx-mod-stream)" >&2; exit 1; }
module=""
for m in /usr/lib/nginx/modules/ngx_stream_module.so /usr/share/nginx/modules/ngx_stream_module.so; do
  [ -f "$m" ] && module="load_module $m;"
done

work=$(mktemp -d)
pids=()
cleanup() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

# The servers: one process each, one worker thread each.
upstreams=""
for i in $(seq 1 "$servers"); do
  p=$((port + i))
  "$rudp" server --listen "127.0.0.1:$p" --threads 1 --stats-json "$work/server-$i.json" \
    2>"$work/server-$i.log" &
  pids+=($!)
  upstreams+="        server 127.0.0.1:$p;"$'\n'
done

# nginx: consistent hashing on the client's address and port, so that every
# datagram of one client (one flow) goes to the same server. On loopback all
# clients share 127.0.0.1, so the port is part of the key; on the Internet
# `hash $remote_addr consistent;` keeps a client's flows together.
cat >"$work/nginx.conf" <<EOF
$module
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.log warn;
events { worker_connections 4096; }
stream {
    upstream rudp_servers {
        hash \$remote_addr\$remote_port consistent;
$upstreams    }
    server {
        listen 127.0.0.1:$port udp reuseport;
        proxy_pass rudp_servers;
        # A session lives as long as datagrams flow; rudp's keep-alive
        # (every 10 s) keeps an idle connection's mapping open.
        proxy_timeout 60s;
    }
}
EOF
nginx -p "$work" -c "$work/nginx.conf"
sleep 0.5

echo "== $clients month clients through nginx on 127.0.0.1:$port to $servers rudp servers"
start=$(date +%s.%N)
for c in $(seq 1 "$clients"); do
  (
    m=$(( (c % 12) + 1 ))
    out=$("$rudp" client --to "127.0.0.1:$port" --timeout 20s "$m" 2>/dev/null || true)
    want=$(sed -n "${m}p" <<'MONTHS'
January
February
March
April
May
June
July
August
September
October
November
December
MONTHS
)
    [ "$out" = "$want" ] && echo ok >"$work/client-$c" || echo "bad: '$out'" >"$work/client-$c"
  ) &
done
wait_clients() {
  for _ in $(seq 1 600); do
    [ "$(ls "$work" | grep -c '^client-')" -ge "$clients" ] && return 0
    sleep 0.1
  done
  return 1
}
wait_clients || true
end=$(date +%s.%N)
ok=$(cat "$work"/client-* 2>/dev/null | grep -c '^ok$' || true)

# Stop the servers gracefully: each writes its report.
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
total=0
for i in $(seq 1 "$servers"); do
  n=$(grep -o '"connections": *[0-9]*' "$work/server-$i.json" | head -1 | tr -dc '0-9')
  n=${n:-0}
  total=$((total + n))
  echo "server $i (127.0.0.1:$((port + i))): $n sessions"
done
printf 'clients answered correctly: %d of %d in %.2f s; sessions served: %d\n' \
  "$ok" "$clients" "$(echo "$end - $start" | bc)" "$total"
[ "$ok" -eq "$clients" ]
