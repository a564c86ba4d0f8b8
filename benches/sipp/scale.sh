#!/usr/bin/env bash
# Scale figures for the README: start-up time with 10,000 extensions (first start seeds the
# store, the second start loads it), and resident memory with 10,000 registered contacts.
# All traffic stays on 127.0.0.1; sipp runs are bounded by -m and timeout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${N:-10000}
WORK=$(mktemp -d)
PID=""
cleanup() { [ -f "$WORK/pid" ] && kill "$(cat "$WORK/pid")" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
(cd "$ROOT" && cargo build --release --quiet --bin dialtone)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/dialtone
PORT=${DIALTONE_PORT:-5064}
API=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
  cat <<YML
server: { sip_host: 127.0.0.1, sip_port: $PORT }
api: { host: 127.0.0.1, port: $API, require_authentication: false }
ami: { enabled: false }
compat_api: { enabled: false }
database: { url: "sqlite://$WORK/d.db" }
sip: { realm: 127.0.0.1 }
registrar: { qualify_frequency_default: ${QUALIFY:-60} }
logging: { level: warn }
extensions:
YML
  for n in $(seq 100000 $((100000 + N - 1))); do printf '  - { number: "%s", name: "u%s", password: "secret%s" }\n' "$n" "$n" "$n"; done
} > "$WORK/d.yml"
{
  echo SEQUENTIAL
  for n in $(seq 100000 $((100000 + N - 1))); do echo "$n;secret$n;[authentication username=$n password=secret$n]"; done
} > "$WORK/users.csv"

start() {  # prints seconds from exec to a healthy API
  local t0; t0=$(date +%s.%N)
  "$BIN" serve --config "$WORK/d.yml" >> "$WORK/d.log" 2>&1 &
  echo $! > "$WORK/pid"
  local PID=$!
  until python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$API/health',timeout=1)" 2>/dev/null; do
    kill -0 "$PID" || { tail "$WORK/d.log"; exit 1; }
    sleep 0.02
  done
  python3 -c "print(f'{$(date +%s.%N) - $t0:.3f}')"
}
stop() {
  local p; p=$(cat "$WORK/pid"); kill "$p"
  while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
  rm -f "$WORK/pid"
}
pid() { cat "$WORK/pid"; }

echo "start-up, first start (seeds $N extensions from config.yml): $(start) s"; stop
# From now on the extensions live only in the store, as after an import or API provisioning.
sed -i '/^extensions:/,$d' "$WORK/d.yml"
echo "start-up, second start (loads $N extensions): $(start) s"
echo "RSS idle with $N extensions: $(awk '/VmRSS/{print $2}' /proc/$(pid)/status) KiB"
(cd "$WORK" && timeout 120 sipp 127.0.0.1:$PORT -sf "$ROOT/conformance/sipp/reg_auth.xml" -inf users.csv -key domain 127.0.0.1 \
   -key expires 3600 -i 127.0.0.1 -p 0 -t u1 -r 2000 -m "$N" -l "$N" -timeout 100s -nostdin >/dev/null 2>&1) || echo "sipp reported failures"
REG=$(python3 -c "import json,urllib.request; print(json.load(urllib.request.urlopen('http://127.0.0.1:$API/api/status'))['registered_extensions'])")
echo "registered extensions: $REG"
echo "RSS right after registering: $(awk '/VmRSS/{print $2}' /proc/$(pid)/status) KiB"
sleep 35   # let Timer J (64*T1 = 32 s) retire the REGISTER transactions
echo "RSS with $REG registered contacts, transactions retired: $(awk '/VmRSS/{print $2}' /proc/$(pid)/status) KiB"
stop
echo "start-up with $REG persisted bindings: $(start) s"
stop
