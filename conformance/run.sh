#!/usr/bin/env bash
# Black-box conformance run: starts Dialtone on free loopback ports and drives it with sipp,
# raw RFC 4475 datagrams and HTTP, the way an outside client would. Every step is bounded in
# time; the server started here is stopped by its PID.
#   SUBJECT_BIN=path  use an already built binary (default: build target/debug/dialtone)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d)
PID=""
fail() { echo "CONFORMANCE FAIL: $*" >&2; [ -f "$WORK/dialtone.log" ] && tail -40 "$WORK/dialtone.log" >&2; exit 1; }
cleanup() { if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill "$PID"; wait "$PID" 2>/dev/null || true; fi; [ -n "${KEEP_WORK:-}" ] && echo "work dir kept: $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT

command -v sipp >/dev/null || fail "sipp not installed (apt-get install sip-tester)"
if [ -z "${SUBJECT_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --quiet --bin dialtone)
  SUBJECT_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/dialtone"
fi

free_port() { python3 -c 'import socket
s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close()
u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",p)); u.close(); print(p)'; }
SIP_PORT=$(free_port); API_PORT=$(free_port); AMI_PORT=$(free_port)
TOKEN=conformance-token-0123456789
AMI_SECRET=conformance-ami-secret

# 100 extensions 3000..3099, password secret<N>
{
  cat <<YML
server:
  sip_host: 127.0.0.1
  sip_port: $SIP_PORT
api:
  host: 127.0.0.1
  port: $API_PORT
  require_authentication: true
  tokens: ["$TOKEN"]
ami:
  enabled: true
  host: 127.0.0.1
  port: $AMI_PORT
  users:
    - { username: conformance, secret: $AMI_SECRET, read: all, write: all }
compat_api:
  enabled: false
database:
  url: "sqlite://$WORK/dialtone.db"
sip:
  realm: conformance
logging:
  level: info
extensions:
YML
  for n in $(seq 3000 3099); do
    printf '  - { number: "%s", name: "User %s", password: "secret%s" }\n' "$n" "$n" "$n"
  done
} > "$WORK/config.yml"
{
  echo SEQUENTIAL
  for n in $(seq 3000 3099); do echo "$n;secret$n;[authentication username=$n password=secret$n];[authentication username=$n password=wrong$n]"; done
} > "$WORK/users.csv"

"$SUBJECT_BIN" serve --config "$WORK/config.yml" >"$WORK/dialtone.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  if python3 - "$API_PORT" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1).read()
PY
  kill -0 "$PID" 2>/dev/null || fail "server exited at start-up"
  sleep 0.1
done

run_sipp() {  # $1 scenario, $2 transport, $3 calls, extra args...
  local sc=$1 tr=$2 m=$3; shift 3
  (cd "$WORK" && timeout 60 sipp "127.0.0.1:$SIP_PORT" -sf "$HERE/sipp/$sc" -inf "$WORK/users.csv" \
     -key domain 127.0.0.1 -key expires 600 -i 127.0.0.1 -p 0 -t "$tr" -m "$m" -r 50 -l 100 \
     -timeout 50s -nostdin -trace_err "$@" >"$WORK/sipp_${sc}_${tr}.out" 2>&1)
}

echo "== sipp REGISTER + digest, 100 extensions, UDP"
run_sipp reg_auth.xml u1 100 || fail "REGISTER over UDP (sipp exit $?)"
echo "== sipp REGISTER + digest, 100 extensions, TCP"
run_sipp reg_auth.xml t1 100 || fail "REGISTER over TCP (sipp exit $?)"
echo "== wrong password -> 403"
run_sipp reg_wrong_password.xml u1 3 || fail "wrong password was not refused with 403"

echo "== REST shows the registrations"
python3 - "$API_PORT" "$TOKEN" <<'PY' || fail "REST check"
import json, sys, urllib.request, urllib.error
port, token = sys.argv[1], sys.argv[2]
def get(path, tok=token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if tok: req.add_header("Authorization", f"Bearer {tok}")
    return json.load(urllib.request.urlopen(req, timeout=5))
try:
    get("/api/extensions", None); raise SystemExit("unauthenticated request was not refused")
except urllib.error.HTTPError as e:
    assert e.code == 401, e.code
exts = get("/api/extensions")
assert len(exts) == 100, len(exts)
reg = [e for e in exts if e["registered"]]
assert len(reg) == 100, f"{len(reg)} registered"
assert all("secret" not in json.dumps(e) for e in exts), "secret leaked"
st = get("/api/status", None)
assert st["registered_extensions"] == 100, st
print("  100 extensions registered, status", st)
PY

echo "== sipp call: uac_auth (3000..3009) -> Dialtone (407 on every INVITE, relay) -> uas registered as 3099"
KIT="$ROOT/../shared/bench/scenarios"
[ -d "$KIT" ] || KIT="$ROOT/../../shared/bench/scenarios"   # from a git worktree
if [ -f "$KIT/uac_auth.xml" ] && [ -f "$KIT/uas.xml" ]; then
  UAS_PORT=$(free_port); UAS_MP=$(free_port); UAC_MP=$(free_port)
  printf 'SEQUENTIAL\n3099;secret3099;[authentication username=3099 password=secret3099]\n' > "$WORK/callee.csv"
  (cd "$WORK" && timeout 30 sipp "127.0.0.1:$SIP_PORT" -sf "$HERE/sipp/reg_auth.xml" -inf "$WORK/callee.csv" -key domain 127.0.0.1 \
     -key expires 600 -i 127.0.0.1 -p "$UAS_PORT" -t u1 -m 1 -timeout 20s -nostdin >"$WORK/sipp_callee_reg.out" 2>&1) \
     || fail "callee registration"
  (cd "$WORK" && exec timeout 60 sipp -sf "$KIT/uas.xml" -i 127.0.0.1 -p "$UAS_PORT" -mi 127.0.0.1 -mp "$UAS_MP" -t u1 \
     -nostdin -timeout 55s >"$WORK/sipp_uas.out" 2>&1) &
  UAS_PID=$!
  head -11 "$WORK/users.csv" > "$WORK/callers.csv"
  (cd "$WORK" && timeout 60 sipp "127.0.0.1:$SIP_PORT" -sf "$KIT/uac_auth.xml" -inf "$WORK/callers.csv" -key domain 127.0.0.1 \
     -s 3099 -i 127.0.0.1 -p 0 -mi 127.0.0.1 -mp "$UAC_MP" -t u1 -m 50 -r 25 -l 50 -d 200 -timeout 50s -nostdin \
     -trace_err >"$WORK/sipp_calls.out" 2>&1) || { kill "$UAS_PID" 2>/dev/null; fail "sipp calls through Dialtone (see sipp_calls.out)"; }
  kill "$UAS_PID" 2>/dev/null; wait "$UAS_PID" 2>/dev/null || true
  echo "  50 calls, 0 failed"

  echo "== sipp calls with RTP: uac_auth_rtp -> Dialtone (407, relay) -> uas_rtp, G.711 both ways"
  ln -sfn "$KIT/media" "$WORK/media"
  (cd "$WORK" && exec timeout 60 sipp -sf "$KIT/uas_rtp.xml" -i 127.0.0.1 -p "$UAS_PORT" -mi 127.0.0.1 -mp "$UAS_MP" -t u1 \
     -nostdin -timeout 55s >"$WORK/sipp_uas_rtp.out" 2>&1) &
  UAS_PID=$!
  (cd "$WORK" && timeout 60 sipp "127.0.0.1:$SIP_PORT" -sf "$KIT/uac_auth_rtp.xml" -inf "$WORK/callers.csv" -key domain 127.0.0.1 \
     -s 3099 -i 127.0.0.1 -p 0 -mi 127.0.0.1 -mp "$UAC_MP" -t u1 -m 20 -r 10 -l 20 -d 2000 -timeout 50s -nostdin \
     -trace_err >"$WORK/sipp_calls_rtp.out" 2>&1) || { kill "$UAS_PID" 2>/dev/null; fail "sipp RTP calls through Dialtone (see sipp_calls_rtp.out)"; }
  kill "$UAS_PID" 2>/dev/null; wait "$UAS_PID" 2>/dev/null || true
  python3 - "$API_PORT" "$TOKEN" <<'PY' || fail "CDRs of the RTP calls"
import json, sys, time, urllib.request
port, token = sys.argv[1], sys.argv[2]
def get(path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    req.add_header("Authorization", f"Bearer {token}")
    return json.load(urllib.request.urlopen(req, timeout=5))
for _ in range(50):
    rows = [r for r in get("/api/cdr?limit=1000") if r["rtp"]["a"]["packets"] > 0]
    if len(rows) >= 20: break
    time.sleep(0.1)
assert len(rows) == 20, f"{len(rows)} CDRs with RTP"
for r in rows:
    assert r["disposition"] == "answered", r
    # 2 s of 50 pps each way, relayed and counted per leg.
    assert r["rtp"]["a"]["packets"] >= 50 and r["rtp"]["b"]["packets"] >= 50, r
    assert r["codec_a"] == "alaw", r
print(f"  20 calls with RTP, 0 failed; per-leg packets e.g. {rows[0]['rtp']}")
PY

  echo "== AMI with a real client (panoramisk): endpoints, ContactStatus, call events, Originate + Variable, Redirect, Hangup + Cause"
  python3 -c 'import panoramisk' 2>/dev/null || timeout 120 python3 -m pip install -q panoramisk >/dev/null 2>&1 || true
  if python3 -c 'import panoramisk' 2>/dev/null; then
    timeout 120 python3 "$HERE/ami_panoramisk.py" "$AMI_PORT" conformance "$AMI_SECRET" "$SIP_PORT" "$UAS_PORT" \
      "$WORK" "$HERE/sipp/reg_auth.xml" "$KIT/uac_auth.xml" "$WORK/callers.csv" "$KIT/uas.xml" || fail "AMI client run"
  else
    echo "  skipped: panoramisk not installable (no PyPI access)"
  fi
else
  echo "  skipped: ../shared/bench/scenarios not found"
fi

echo "== BLF: a sipp watcher SUBSCRIBEs to dialog of 3099 while a sipp call rings and answers it"
if [ -f "$KIT/uac_auth.xml" ] && [ -f "$KIT/uas.xml" ]; then
  W_PORT=$(free_port)
  sed -n '1p;2p' "$WORK/users.csv" > "$WORK/watcher.csv"
  (cd "$WORK" && exec timeout 60 sipp "127.0.0.1:$SIP_PORT" -sf "$HERE/sipp/blf_watcher.xml" -inf "$WORK/watcher.csv" \
     -key domain 127.0.0.1 -s 3099 -i 127.0.0.1 -p "$W_PORT" -t u1 -m 1 -timeout 50s -nostdin -trace_err -trace_msg \
     -message_file "$WORK/blf_msgs.log" >"$WORK/sipp_blf.out" 2>&1) &
  W_PID=$!
  # Wait (bounded) for the first NOTIFY: the subscription is in place before the call.
  for _ in $(seq 100); do grep -q "NOTIFY sip:" "$WORK/blf_msgs.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "NOTIFY sip:" "$WORK/blf_msgs.log" || { kill "$W_PID" 2>/dev/null; fail "no initial NOTIFY for the BLF watcher (see sipp_blf.out)"; }
  (cd "$WORK" && exec timeout 60 sipp -sf "$KIT/uas.xml" -i 127.0.0.1 -p "$UAS_PORT" -mi 127.0.0.1 -mp "$UAS_MP" -t u1 \
     -nostdin -timeout 55s >"$WORK/sipp_uas_blf.out" 2>&1) &
  UAS_PID=$!
  (cd "$WORK" && timeout 60 sipp "127.0.0.1:$SIP_PORT" -sf "$KIT/uac_auth.xml" -inf "$WORK/callers.csv" -key domain 127.0.0.1 \
     -s 3099 -i 127.0.0.1 -p 0 -mi 127.0.0.1 -mp "$UAC_MP" -t u1 -m 1 -d 500 -timeout 50s -nostdin \
     >"$WORK/sipp_call_blf.out" 2>&1) || { kill "$UAS_PID" "$W_PID" 2>/dev/null; fail "call for the BLF check"; }
  kill "$UAS_PID" 2>/dev/null; wait "$UAS_PID" 2>/dev/null || true
  wait "$W_PID" || fail "BLF watcher: NOTIFY states not idle -> early -> confirmed -> terminated (see sipp_blf.out, blf_msgs.log)"
  echo "  NOTIFY states in order: idle, early, confirmed, terminated; unsubscribe -> terminated"
fi

echo "== RFC 4475 torture messages over UDP"
python3 "$HERE/torture.py" 127.0.0.1 "$SIP_PORT" "$HERE/rfc4475" || fail "torture run"
kill -0 "$PID" || fail "server died during the torture run"

echo "== graceful shutdown"
kill -TERM "$PID"
for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then fail "server did not stop within 10 s of SIGTERM"; fi
wait "$PID"; rc=$?; PID=""
[ $rc -eq 0 ] || fail "server exit code $rc"
echo "== pjsip.conf: import at start-up, sipp REGISTER with the file's passwords, a call, pjsip reload"
P_SIP=$(free_port); P_API=$(free_port); P_AMI=$(free_port); P_COMPAT=$(free_port)
{
  printf '[transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0:5060\n'
  for n in 4001 4002; do
    printf '\n[%s]\ntype=endpoint\ncontext=from-internal\ndisallow=all\nallow=alaw,ulaw\nauth=%s\naors=%s\n' "$n" "$n" "$n"
    printf '\n[%s]\ntype=auth\nauth_type=userpass\nusername=%s\npassword=pj-%s-Secret\n' "$n" "$n" "$n"
    printf '\n[%s]\ntype=aor\nmax_contacts=1\n' "$n"
  done
} > "$WORK/pjsip.conf"
cat > "$WORK/pjsip.yml" <<YML
server:
  sip_host: 127.0.0.1
  sip_port: $P_SIP
api:
  host: 127.0.0.1
  port: $P_API
  tokens: ["$TOKEN"]
ami:
  enabled: true
  host: 127.0.0.1
  port: $P_AMI
  users:
    - { username: admin, secret: conformance-ami-secret }
compat_api:
  enabled: true
  host: 127.0.0.1
  port: $P_COMPAT
pjsip:
  config_file: "$WORK/pjsip.conf"
database:
  url: "sqlite://$WORK/pjsip.db"
sip:
  realm: conformance
extensions: []
YML
"$SUBJECT_BIN" serve --config "$WORK/pjsip.yml" >"$WORK/dialtone-pjsip.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  if python3 - "$P_API" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1).read()
PY
  kill -0 "$PID" 2>/dev/null || fail "server (pjsip.conf) exited at start-up: $(tail -5 "$WORK/dialtone-pjsip.log")"
  sleep 0.1
done
# The credentials come from the file's auth sections.
python3 - "$WORK/pjsip.conf" "$WORK" <<'PY' || fail "reading pjsip.conf"
import re, sys
text = open(sys.argv[1]).read()
auths = {}
for sec in re.split(r"\n(?=\[)", text):
    if "type=auth" in sec:
        u = re.search(r"^username=(.*)$", sec, re.M).group(1)
        p = re.search(r"^password=(.*)$", sec, re.M).group(1)
        auths[u] = p
for u in ("4001", "4002"):
    with open(f"{sys.argv[2]}/pj_{u}.csv", "w") as f:
        p = auths[u]
        f.write(f"SEQUENTIAL\n{u};{p};[authentication username={u} password={p}];x\n")
PY
PJ_CALLER_PORT=$(free_port); PJ_UAS_PORT=$(free_port); PJ_UAS_MP=$(free_port); PJ_UAC_MP=$(free_port)
for pair in "4001:$PJ_CALLER_PORT" "4002:$PJ_UAS_PORT"; do
  u=${pair%%:*}; port=${pair##*:}
  (cd "$WORK" && timeout 30 sipp "127.0.0.1:$P_SIP" -sf "$HERE/sipp/reg_auth.xml" -inf "$WORK/pj_$u.csv" -key domain 127.0.0.1 \
     -key expires 600 -i 127.0.0.1 -p "$port" -t u1 -m 1 -timeout 20s -nostdin >"$WORK/sipp_pj_reg_$u.out" 2>&1) \
     || fail "REGISTER $u with the password from pjsip.conf"
done
echo "  4001 and 4002 registered with the passwords from pjsip.conf"
if [ -f "$KIT/uac_auth.xml" ] && [ -f "$KIT/uas.xml" ]; then
  (cd "$WORK" && exec timeout 40 sipp -sf "$KIT/uas.xml" -i 127.0.0.1 -p "$PJ_UAS_PORT" -mi 127.0.0.1 -mp "$PJ_UAS_MP" -t u1 \
     -nostdin -timeout 35s >"$WORK/sipp_pj_uas.out" 2>&1) &
  UAS_PID=$!
  (cd "$WORK" && timeout 40 sipp "127.0.0.1:$P_SIP" -sf "$KIT/uac_auth.xml" -inf "$WORK/pj_4001.csv" -key domain 127.0.0.1 \
     -s 4002 -i 127.0.0.1 -p "$PJ_CALLER_PORT" -mi 127.0.0.1 -mp "$PJ_UAC_MP" -t u1 -m 3 -r 3 -l 3 -d 200 -timeout 30s -nostdin \
     -trace_err >"$WORK/sipp_pj_calls.out" 2>&1) || { kill "$UAS_PID" 2>/dev/null; fail "calls 4001 -> 4002 (see sipp_pj_calls.out)"; }
  kill "$UAS_PID" 2>/dev/null; wait "$UAS_PID" 2>/dev/null || true
  echo "  3 calls 4001 -> 4002, 0 failed"
else
  echo "  call skipped: ../shared/bench/scenarios not found"
fi
# pjsip reload of the unchanged file (the running server, through its AMI): both stay registered.
"$SUBJECT_BIN" pjsip reload --config "$WORK/pjsip.yml" >"$WORK/pjsip_reload.out" 2>&1 || fail "dialtone pjsip reload: $(cat "$WORK/pjsip_reload.out")"
python3 - "$P_COMPAT" <<'PY' || fail "registrations after pjsip reload"
import json, sys, urllib.request
port = sys.argv[1]
def call(method, path, body=None, tok=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if tok: req.add_header("Authorization", f"Bearer {tok}")
    return json.load(urllib.request.urlopen(req, timeout=5))
tok = call("POST", "/api/auth/login", {"username": "admin", "password": "change-me-now"})["token"]
exts = {e["extension_number"]: e for e in call("GET", "/api/extensions", tok=tok)["extensions"]}
assert sorted(exts) == ["4001", "4002"], sorted(exts)
assert all(e["registered"] for e in exts.values()), exts
eps = call("GET", "/endpoints")["endpoints"]
assert [e["extension"] for e in eps] == ["4001", "4002"], eps
print("  pjsip reload: 4001 and 4002 still registered (RayanPBX and ISPBX views on the compat port)")
PY
kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""

echo "conformance: all passed"
