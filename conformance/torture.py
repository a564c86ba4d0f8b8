#!/usr/bin/env python3
"""Send every RFC 4475 torture message to a SIP server over UDP and check its answer.

usage: torture.py HOST PORT DIR   (DIR holds the .dat files and MANIFEST.tsv)

The server is treated as a registrar/UAS (a PBX): each message must get the status listed
below, or no answer where the message is a response or cannot be answered. The server must
still answer an OPTIONS after the run (it did not crash). Works against any SIP server that
answers to the source port (Asterisk's force_rport behaviour)."""
import csv, os, socket, sys, time, uuid

# file -> set of acceptable first final statuses; None in the set = "no answer" is fine.
# 401/407 mean "challenged" (a PBX that authenticates REGISTER/INVITE first).
CHALLENGE = {401, 407}
EXPECT = {
    # valid messages (parser layer): must be accepted; what the application answers varies
    "wsinv.dat": {404, 480, 501} | CHALLENGE,       # INVITE for a user that is not ours
    "intmeth.dat": {501, 405},                      # unknown method
    "esc01.dat": {404, 480, 501} | CHALLENGE,
    "escnull.dat": CHALLENGE | {403, 404},          # REGISTER for a user that is not ours
    "esc02.dat": {501, 405},                        # RE%47IST%45R is not REGISTER
    "lwsdisp.dat": {200},
    "longreq.dat": {404, 480, 501} | CHALLENGE,
    "dblreq.dat": CHALLENGE | {403, 404},
    "semiuri.dat": {200},
    "transports.dat": {200},
    "mpart01.dat": {501, 405, 404, 415} | CHALLENGE,
    # responses: never answered
    "unreason.dat": {None}, "noreason.dat": {None}, "scalarlg.dat": {None},
    "bigcode.dat": {None}, "bcast.dat": {None},
    # invalid: 400 (or 505) where the RFC says so
    "badinv01.dat": {400}, "clerr.dat": {400}, "ncl.dat": {400}, "scalar02.dat": {400},
    "quotbal.dat": {400}, "ltgtruri.dat": {400}, "lwsruri.dat": {400}, "lwsstart.dat": {400},
    "trws.dat": {400}, "escruri.dat": {400}, "regbadct.dat": {400}, "badaspec.dat": {400},
    "baddn.dat": {400}, "badvers.dat": {505}, "mismatch01.dat": {400}, "mismatch02.dat": {400, 501},
    "multi01.dat": {400}, "mcl01.dat": {400},
    "baddate.dat": {400, 404, 480, 501} | CHALLENGE,  # may be rejected or the Date ignored
    "insuf.dat": {400, None},                           # no Call-ID/From/To: answer 400 if possible
    "test.dat": {400, None},
    "badbranch.dat": {200, 400},
    # application layer
    "unkscm.dat": {416}, "novelsc.dat": {416}, "unksm2.dat": {400},
    "bext01.dat": {420}, "invut.dat": {415}, "regaut01.dat": CHALLENGE,
    "zeromf.dat": {200}, "cparam01.dat": CHALLENGE | {403, 404}, "cparam02.dat": CHALLENGE | {403, 404},
    "regescrt.dat": CHALLENGE | {403, 404}, "sdp01.dat": {406, 400},
    "inv2543.dat": {404, 480, 501} | CHALLENGE,
}

def first_final(sock, deadline):
    """Return the first final status received before deadline, or None."""
    while True:
        left = deadline - time.time()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(65535)
        except socket.timeout:
            return None
        if not data.startswith(b"SIP/2.0 "):
            continue
        try:
            code = int(data[8:11])
        except ValueError:
            continue
        if code >= 200:
            return code

def main():
    host, port, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rows = list(csv.DictReader(open(os.path.join(d, "MANIFEST.tsv")), delimiter="\t"))
    bad = 0
    for row in rows:
        name = row["file"]
        want = EXPECT.get(name)
        if want is None:
            print(f"  {name}: no expectation listed"); bad += 1; continue
        data = open(os.path.join(d, name), "rb").read()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.sendto(data, (host, port))
        wait = 0.4 if None in want else 2.0
        got = first_final(s, time.time() + wait)
        s.close()
        ok = got in want
        bad += 0 if ok else 1
        print(f"  {'ok ' if ok else 'BAD'} {name:16} got {got} want {sorted(want, key=str)}")
    # still alive?
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
    lport = s.getsockname()[1]
    cid = uuid.uuid4().hex
    s.sendto((f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{cid}\r\n"
              f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:{host}>\r\nCall-ID: {cid}\r\n"
              f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(), (host, port))
    alive = first_final(s, time.time() + 2) == 200
    print(f"  server answers OPTIONS after the run: {alive}")
    print(f"torture: {len(rows) - bad} passed, {bad} failed")
    sys.exit(0 if bad == 0 and alive and len(rows) == 50 else 1)

if __name__ == "__main__":
    main()
