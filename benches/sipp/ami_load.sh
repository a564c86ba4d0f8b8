#!/usr/bin/env bash
# AMI fan-out under call load: Dialtone (release) with AMI on, sipp cps_auth at $RATE calls/s
# (uac_auth → Dialtone → uas, 407 on every INVITE), once without AMI clients and once with
# $AMI_CLIENTS clients reading every event (timestampevents on, so each client measures the
# delivery latency of real call events). Loopback only; every run bounded.
#   benches/sipp/ami_load.sh            (RATE=1000 STEP_S=20 AMI_CLIENTS=100)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
RATE=${RATE:-1000}; STEP_S=${STEP_S:-20}; export AMI_CLIENTS=${AMI_CLIENTS:-100}
OUT=${OUT:-$ROOT/benches/results/ami-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
KIT=$(mktemp -d); cp -r "$SHARED/bench/." "$KIT/"; mkdir -p "$KIT/db" "$KIT/logs"
PID=""; CPID=""
cleanup() {
  [ -n "$CPID" ] && kill "$CPID" 2>/dev/null
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$KIT"
}
trap cleanup EXIT
(cd "$ROOT" && cargo build --release --quiet --bin dialtone && cargo bench --bench ami_fanout --no-run --quiet)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/dialtone
FAN=$(ls -t "${CARGO_TARGET_DIR:-$ROOT/target}"/release/deps/ami_fanout-* | grep -v '\.d$' | head -1)
PORT=5062; AMI=5039
{
  cat <<YML
server: { sip_host: 127.0.0.1, sip_port: $PORT, rtp_port_range_start: 20000, rtp_port_range_end: 40000 }
api: { host: 127.0.0.1, port: 0 }
ami:
  enabled: true
  host: 127.0.0.1
  port: $AMI
  timestampevents: true
  users: [ { username: bench, secret: bench-secret-1, read: all, write: all } ]
compat_api: { enabled: false }
database: { url: "sqlite://$OUT/dialtone.db" }
sip: { realm: 127.0.0.1 }
logging: { level: warn }
security: { rate_limit: { max_attempts: 0 } }
extensions:
YML
  for n in $(seq 1000 2000); do printf '  - { number: "%s", name: "u%s", password: "secret%s" }\n' "$n" "$n" "$n"; done
} > "$OUT/dialtone.yml"
"$BIN" serve --config "$OUT/dialtone.yml" > "$OUT/dialtone.log" 2>&1 &
PID=$!
sleep 2
kill -0 "$PID" || { cat "$OUT/dialtone.log"; exit 1; }
run() {  # $1 label
  REGISTER_CALLEE=1 SUT=external SUT_PORT=$PORT SUT_PIDS="$PID" CPS_RATES="$RATE" CPS_STEP_S=$STEP_S \
    OUT="$OUT/$1" "$KIT/run_all.sh" cps_auth > "$OUT/$1.log" 2>&1 || true
  grep '^label=' "$OUT/$1.log" | sed "s/^/[$1] /" | cut -c1-400
}
echo "== $RATE calls/s, no AMI clients"
run no_clients
echo "== $RATE calls/s, $AMI_CLIENTS AMI clients"
RSS_BEFORE=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
timeout $((STEP_S + 120)) "$FAN" --clients-only 127.0.0.1:$AMI bench bench-secret-1 $((STEP_S + 40)) > "$OUT/clients.txt" 2>&1 &
CPID=$!
sleep 1
# Server RSS every second while the calls run (a stalled client must not grow it).
( for _ in $(seq $((STEP_S + 5))); do awk '/VmRSS/{print $2}' /proc/$PID/status 2>/dev/null; sleep 1; done ) > "$OUT/rss.txt" &
RPID=$!
run with_clients
wait "$RPID" 2>/dev/null || true
wait "$CPID" 2>/dev/null || true; CPID=""
cat "$OUT/clients.txt"
echo "server RSS (KiB): before the clients $RSS_BEFORE, peak during the run $(sort -n "$OUT/rss.txt" | tail -1), after $(awk '/VmRSS/{print $2}' /proc/$PID/status)"
