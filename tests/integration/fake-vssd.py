#!/usr/bin/env python3
"""fake-vssd.py - a stand-in for vssd that misbehaves on purpose, for the
writer tests of storesvc (tests/integration/storesvc-writer.sh) and for a
vssd that refuses vssvol (tests/integration/vssvol.sh).

It speaks the wire protocol of docs/protocol.md (4-byte big-endian length,
then one JSON object) on a Unix socket, to one writer connection:

  fake-vssd.py SOCKET script STEP...
      answers hello and register, then sends the STEPs in order, waiting
      for each reply, prints one line per reply ("EVENT SET REPLY-JSON"),
      and closes the connection. A STEP is EVENT[@SET][:ARG]: SET is any
      label (one GUID per label), ARG the backup type of PrepareForBackup
      (default full; later events of the set carry it too) or, for
      BackupComplete, "all" or "none" (every component the writer
      registered reported backed up, or none). "sleep:SECONDS" pauses.
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
    path, mode, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
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
    send(s, {"v": 1, "re": reg["id"], "status": 0})
    comps = [c["name"] for c in reg.get("components", [])]
    sets, types, eid = {}, {}, 100
    for step in steps:
        if step.startswith("sleep:"):
            time.sleep(float(step[6:]))
            continue
        event, _, arg = step.partition(":")
        event, _, label = event.partition("@")
        label = label or "A"
        set_id = sets.setdefault(label, "{%s}" % uuid.uuid4())
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
