#!/usr/bin/env bash
# Side-by-side load run: the shared sipp kit (../shared/bench/run_all.sh) against Kamailio and
# against Dialtone, in one session, on loopback. Prints both ladders and the ratio.
#   benches/sipp/compare.sh [phases]      phases as run_all.sh: reg reg_tcp ... (default: reg)
#   PEER=0 skips Kamailio, SELF=0 skips Dialtone; REG_RATES / REG_STEP_S etc. pass through to run_all.sh.
# Needs: sipp, python3, sqlite3; for the peer: kamailio + kamailio-sqlite-modules (apt).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
PHASES=${*:-reg}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/benches/results/$STAMP}
mkdir -p "$OUT"
KIT=$(mktemp -d)
cp -r "$SHARED/bench/." "$KIT/"          # the kit writes users.csv/results beside itself
mkdir -p "$KIT/db" "$KIT/logs"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$KIT"; }
trap cleanup EXIT

[ "${SELF:-1}" = 1 ] && (cd "$ROOT" && cargo build --release --quiet --bin dialtone)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/dialtone

if [ "${PEER:-1}" = 1 ] && command -v kamailio >/dev/null; then
  echo "== Kamailio (bundled config${KAM_DEFS:+, $KAM_DEFS})"
  OUT="$OUT/kamailio" "$KIT/run_all.sh" $PHASES || true
fi

if [ "${SELF:-1}" = 1 ]; then
echo "== Dialtone"
PORT=${DIALTONE_PORT:-5062}
{
  cat <<YML
server: { sip_host: 127.0.0.1, sip_port: $PORT, rtp_port_range_start: 20000, rtp_port_range_end: 40000 }
api: { host: 127.0.0.1, port: 0 }
ami: { enabled: false }
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
# A PBX routes calls to registered users: register the sipp UAS as the callee first.
REGISTER_CALLEE=1 SUT=external SUT_PORT=$PORT SUT_PIDS="$PID" RELAY_MIN=20000 RELAY_MAX=40000 OUT="$OUT/dialtone" "$KIT/run_all.sh" $PHASES || true
echo "RSS after the run (KiB): $(awk '/VmRSS/{print $2}' /proc/$PID/status)" | tee "$OUT/dialtone_rss.txt"
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
fi

for s in kamailio dialtone; do
  [ -f "$OUT/$s/results.jsonl" ] || continue
  echo; echo "### $s"; python3 "$KIT/tools/summarize.py" "$OUT/$s/results.jsonl"
done
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def best(name):
    p = os.path.join(out, name, "results.jsonl")
    if not os.path.exists(p): return {}
    b = {}
    for l in open(p):
        r = json.loads(l)
        clean = not r.get("failed") and not r.get("retrans") and (r.get("successful") or 0) >= (r.get("created") or 1)
        if clean:
            k = r.get("phase", "?") + "/" + str(r.get("transport", ""))
            b[k] = max(b.get(k, 0), r.get("target_rate") or 0)
    return b
k, d = best("kamailio"), best("dialtone")
print("\n| phase | Kamailio best clean/s | Dialtone best clean/s | ratio |\n|---|---|---|---|")
for ph in sorted(set(k) | set(d)):
    kv, dv = k.get(ph), d.get(ph)
    ratio = f"{dv / kv:.2f}" if kv and dv else ""
    print(f"| {ph} | {kv or ''} | {dv or ''} | {ratio} |")
PY
echo "results in $OUT"
