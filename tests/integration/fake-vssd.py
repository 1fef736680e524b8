#!/usr/bin/env python3
"""fake-vssd.py - a stand-in for vssd that misbehaves on purpose, for the
writer tests of storesvc and libvss (tests/integration/storesvc-writer.sh,
libvss-writer.sh) and for a vssd that refuses vssvol (tests/integration/vssvol.sh).

It speaks the wire protocol of docs/protocol.md (4-byte big-endian length,
then one JSON object) on a Unix socket, to one writer connection:

  fake-vssd.py [--freeze-timeout MS] SOCKET script STEP...
      answers hello and register (with "freeze_timeout_ms": MS in the
      register reply if given), then sends the STEPs in order, waiting
      for each reply, prints one line per reply ("EVENT SET REPLY-JSON"),
      and closes the connection. A STEP is EVENT[@SET][:ARG]: SET is any
      label (one GUID per label; "set LABEL GUID" is printed when a label
      is first used), ARG the backup type of PrepareForBackup
      (default full; later events of the set carry it too) or, for
      BackupComplete, "all" or "none" (every component the writer
      registered reported backed up, or none). "sleep:SECONDS" pauses;
      "eof" waits (90 s at most) for the writer to close the connection
      and prints "eof".
  fake-vssd.py SOCKET silent-hello | silent-register
      never answers hello (or answers hello, never register): a vssd
      that accepts and then hangs. Prints "connected" (then "hello"
      with silent-register) as the writer gets there; exits when the
      writer closes the connection.
  fake-vssd.py SOCKET newer-protocol
      answers every hello, on any number of connections, with protocol 99
      (a vssd of another version, which libvss refuses: VSS_E_PROTOCOL)
      and closes the connection; prints "hello" for each. Exits 10 s after
      the last connection.

Everything is bounded: a reply not in within 30 s is an error (exit 1), and
the listener gives up after 60 s without a connection.
"""
import json
import os
import socket
import struct
import sys
import time
import uuid


def send(s, obj):
    b = json.dumps(obj).encode()
    s.sendall(struct.pack(">I", len(b)) + b)


def recv(s):
    hdr = s.recv(4, socket.MSG_WAITALL)
    if len(hdr) < 4:
        return None
    n = struct.unpack(">I", hdr)[0]
    body = s.recv(n, socket.MSG_WAITALL)
    return json.loads(body) if len(body) == n else None


def say(line):
    print(line, flush=True)


def main():
    args = sys.argv[1:]
    freeze_timeout = None
    if args[0] == "--freeze-timeout":
        freeze_timeout = int(args[1])
        args = args[2:]
    path, mode, steps = args[0], args[1], args[2:]
    if os.path.exists(path):
        os.unlink(path)
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(path)
    ls.listen(4)
    ls.settimeout(60)
    if mode == "newer-protocol":
        while True:
            try:
                s, _ = ls.accept()
            except socket.timeout:
                return 0
            ls.settimeout(10)
            s.settimeout(30)
            hello = recv(s)
            if hello:
                send(s, {"v": 1, "re": hello["id"], "status": 0, "server": "fake-vssd",
                         "protocol": 99})
                say("hello")
            s.close()
    s, _ = ls.accept()
    s.settimeout(30)
    say("connected")
    if mode.startswith("silent"):
        s.settimeout(90)
    if mode == "silent-hello":
        while s.recv(4096):     # until the writer closes
            pass
        return 0
    hello = recv(s)
    send(s, {"v": 1, "re": hello["id"], "status": 0, "server": "fake-vssd", "protocol": 1})
    say("hello")
    reg = recv(s)
    if mode == "silent-register":
        while s.recv(4096):
            pass
        return 0
    reply = {"v": 1, "re": reg["id"], "status": 0}
    if freeze_timeout is not None:
        reply["freeze_timeout_ms"] = freeze_timeout
    send(s, reply)
    comps = [c["name"] for c in reg.get("components", [])]
    sets, types, eid = {}, {}, 100
    for step in steps:
        if step.startswith("sleep:"):
            time.sleep(float(step[6:]))
            continue
        if step == "eof":
            s.settimeout(90)
            while s.recv(4096):
                pass
            say("eof")
            return 0
        event, _, arg = step.partition(":")
        event, _, label = event.partition("@")
        label = label or "A"
        if label not in sets:
            sets[label] = "{%s}" % uuid.uuid4()
            say("set %s %s" % (label, sets[label]))
        set_id = sets[label]
        if event == "PrepareForBackup":
            types[label] = arg or "full"
        eid += 1
        req = {"v": 1, "id": eid, "op": "event", "event": event, "set_id": set_id,
               "backup_type": types.get(label, "full"), "context": 0, "volumes": []}
        if event == "BackupComplete":
            req["succeeded"] = [{"logical_path": "", "name": c, "succeeded": arg != "none"}
                                for c in comps]
        send(s, req)
        rep = recv(s)
        if rep is None or rep.get("re") != eid:
            say("%s %s no reply: %r" % (event, label, rep))
            return 1
        say("%s %s %s" % (event, label, json.dumps(rep, sort_keys=True)))
    s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
