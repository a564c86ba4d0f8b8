#!/usr/bin/env python3
"""AMI conformance with a real client library (panoramisk, from PyPI).

Logs in, lists endpoints (PJSIPShowEndpoints), registers two users with sipp and sees their
ContactStatus, places a sipp call and sees its Newchannel/Newstate/DialBegin/DialEnd/Hangup,
then an async Originate with a Variable (OriginateResponse, VarSet), Redirects its caller to a
third extension (the old callee hangs up, the new one is bridged) and hangs it up with the
Hangup action and a Cause.
Every wait is bounded; nothing relies on a sleep.

usage: ami_panoramisk.py AMI_PORT USER SECRET SIP_PORT UAS_PORT WORK REG_XML UAC_XML CALLERS_CSV
                         UAS_XML
"""
import asyncio
import subprocess
import sys

from panoramisk import Manager

(ami_port, user, secret, sip_port, uas_port, work, reg_xml, uac_xml,
 callers_csv, uas_xml) = sys.argv[1:11]
TIMEOUT = 20


def fail(msg):
    print(f"  AMI FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


async def main():
    events = []
    arrived = asyncio.Event()
    mgr = Manager(host="127.0.0.1", port=int(ami_port), username=user, secret=secret,
                  ping_delay=3600, ping_interval=3600)

    def on_event(_mgr, ev):
        events.append(dict(ev))
        arrived.set()

    mgr.register_event("*", on_event)
    await asyncio.wait_for(mgr.connect(), TIMEOUT)
    # Login happens on connect; FullyBooted follows it.
    await wait_for(events, lambda e: e.get("Event") == "FullyBooted", arrived, "FullyBooted")

    resp = await asyncio.wait_for(mgr.send_action({"Action": "PJSIPShowEndpoints"}), TIMEOUT)
    if not isinstance(resp, list):
        fail(f"PJSIPShowEndpoints was not a list: {resp}")
    items = [m for m in resp if m.get("Event") == "EndpointList"]
    done = [m for m in resp if m.get("Event") == "EndpointListComplete"]
    if len(items) < 100 or not done or int(done[0]["ListItems"]) != len(items):
        fail(f"PJSIPShowEndpoints: {len(items)} items, complete={done}")
    print(f"  PJSIPShowEndpoints: {len(items)} endpoints")

    # Register 3097, 3098 and 3099 at the UAS's address: ContactStatus for each new one.
    csv = f"{work}/ami_callees.csv"
    with open(csv, "w") as f:
        f.write("SEQUENTIAL\n")
        for n in (3097, 3098, 3099):
            f.write(f"{n};secret{n};[authentication username={n} password=secret{n}]\n")
    await sipp([f"127.0.0.1:{sip_port}", "-sf", reg_xml, "-inf", csv, "-key", "domain",
                "127.0.0.1", "-key", "expires", "600", "-i", "127.0.0.1", "-p", uas_port,
                "-t", "u1", "-m", "3", "-timeout", "15s", "-nostdin"], "registration")
    # 3099 was registered at that address before (a refresh reports nothing); 3098 is new.
    await wait_for(events, lambda e: e.get("Event") == "ContactStatus" and e.get("AOR") == "3098",
                   arrived, "ContactStatus 3098")
    print("  ContactStatus for 3098")
    # The UAS answers every INVITE at that address (both users).
    uas = await asyncio.create_subprocess_exec(
        "sipp", "-sf", uas_xml, "-i", "127.0.0.1", "-p", uas_port, "-t", "u1", "-nostdin",
        "-timeout", "55s", cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await calls(mgr, events, arrived)
    finally:
        if uas.returncode is None:
            uas.kill()
        await uas.wait()
    mgr.close()


async def calls(mgr, events, arrived):

    # One sipp call 3000 -> 3099.
    mark = len(events)
    await sipp([f"127.0.0.1:{sip_port}", "-sf", uac_xml, "-inf", callers_csv, "-key", "domain",
                "127.0.0.1", "-s", "3099", "-i", "127.0.0.1", "-p", "0", "-t", "u1", "-m", "1",
                "-d", "200", "-timeout", "15s", "-nostdin"], "call")
    await wait_for(events, lambda e: e.get("Event") == "Hangup", arrived, "Hangup", start=mark,
                   count=2)
    seen = [e.get("Event") for e in events[mark:]]
    for name in ("Newchannel", "Newstate", "DialBegin", "DialEnd", "BridgeEnter", "Hangup"):
        if name not in seen:
            fail(f"no {name} for the sipp call; saw {seen}")
    chans = {e["Channel"] for e in events[mark:] if e.get("Event") == "Newchannel"}
    if not any(c.startswith("PJSIP/3000-") for c in chans) or \
            not any(c.startswith("PJSIP/3099-") for c in chans):
        fail(f"channel names {chans}")
    end = [e for e in events[mark:] if e.get("Event") == "DialEnd"]
    if end[0].get("DialStatus") != "ANSWER":
        fail(f"DialEnd {end[0]}")
    print(f"  call events: {len(seen)} ({', '.join(sorted(set(seen)))})")

    # Async Originate 3098 -> 3099 (the UAS answers both), reported by OriginateResponse.
    mark = len(events)
    resp = await asyncio.wait_for(mgr.send_action({
        "Action": "Originate", "Channel": "PJSIP/3098", "Context": "from-internal",
        "Exten": "3099", "Priority": "1", "CallerID": '"Conformance" <3098>',
        "Variable": "CRM_ID=42", "Async": "true"}), TIMEOUT)
    msgs = resp if isinstance(resp, list) else [resp]
    ors = [m for m in msgs if m.get("Event") == "OriginateResponse"]
    if not ors or ors[0].get("Response") != "Success" or ors[0].get("Reason") != "4":
        fail(f"Originate: {msgs}")
    chan = ors[0]["Channel"]
    print(f"  Originate: OriginateResponse Success on {chan}")
    await wait_for(events, lambda e: e.get("Event") == "VarSet" and e.get("Channel") == chan
                   and e.get("Variable") == "CRM_ID" and e.get("Value") == "42", arrived,
                   "VarSet CRM_ID=42", start=mark)
    await wait_for(events, lambda e: e.get("Event") == "BridgeEnter", arrived, "BridgeEnter",
                   start=mark, count=2)
    old_callee = [e["Channel"] for e in events[mark:]
                  if e.get("Event") == "Newchannel" and e["Channel"].startswith("PJSIP/3099-")]
    print(f"  Originate: VarSet CRM_ID=42, bridged with {old_callee[0]}")

    # Redirect the originated caller to 3097: 3099 hangs up, 3097 rings and is bridged.
    mark = len(events)
    resp = await asyncio.wait_for(mgr.send_action({
        "Action": "Redirect", "Channel": chan, "Context": "from-internal", "Exten": "3097",
        "Priority": "1"}), TIMEOUT)
    if resp.get("Response") != "Success" or resp.get("Message") != "Redirect successful":
        fail(f"Redirect: {resp}")
    await wait_for(events, lambda e: e.get("Event") == "Hangup"
                   and e.get("Channel") == old_callee[0], arrived, "Hangup of 3099", start=mark)
    await wait_for(events, lambda e: e.get("Event") == "BridgeEnter"
                   and e.get("Channel", "").startswith("PJSIP/3097-"), arrived,
                   "BridgeEnter of 3097", start=mark)
    print("  Redirect: 3099 hung up, 3097 bridged with the originated channel")

    mark = len(events)
    resp = await asyncio.wait_for(mgr.send_action({"Action": "Hangup", "Channel": chan,
                                                   "Cause": "16"}), TIMEOUT)
    if resp.get("Response") != "Success":
        fail(f"Hangup action: {resp}")
    await wait_for(events, lambda e: e.get("Event") == "Hangup", arrived, "Hangup", start=mark,
                   count=2)
    causes = {e.get("Cause") for e in events[mark:] if e.get("Event") == "Hangup"}
    if causes != {"16"}:
        fail(f"Hangup causes {causes}")
    print("  Hangup action (Cause 16): both channels hung up")


async def wait_for(events, pred, arrived, what, start=0, count=1):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while sum(1 for e in events[start:] if pred(e)) < count:
        left = deadline - loop.time()
        if left <= 0:
            fail(f"timed out waiting for {what}; saw {[(e.get('Event'), e.get('AOR') or e.get('Channel')) for e in events[start:]]}")
        arrived.clear()
        try:
            await asyncio.wait_for(arrived.wait(), left)
        except asyncio.TimeoutError:
            pass


async def sipp(args, what):
    proc = await asyncio.create_subprocess_exec(
        "sipp", *args, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rc = await asyncio.wait_for(proc.wait(), 30)
    except asyncio.TimeoutError:
        proc.kill()
        fail(f"sipp {what} did not finish")
    if rc != 0:
        fail(f"sipp {what} exited {rc}")


asyncio.run(main())
