#!/usr/bin/env python3
"""A stand-in for systemd's notification socket (sd_notify(3)).

    notify_listen.py SOCKET_PATH OUT_FILE [MAX_SECONDS]

Binds a unix datagram socket at SOCKET_PATH (with SO_PASSCRED, as the
service manager does, so every message carries the sender's pid) and
appends one JSON line per datagram to OUT_FILE:
{"pid": SENDER_PID, "msg": "READY=1\\nSTATUS=..."}. A BARRIER=1 message's
file descriptor is closed at once, as systemd does once it has processed
what came before. Stops on SIGTERM or after MAX_SECONDS (default 300).
"""
import array
import json
import os
import signal
import socket
import struct
import sys
import time


def main():
    path, out = sys.argv[1], sys.argv[2]
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 300.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    s.bind(path)
    os.chmod(path, 0o777)
    deadline = time.monotonic() + limit
    fdsize = array.array("i").itemsize
    ucred = struct.calcsize("3i")
    with open(out, "a", buffering=1) as f:
        f.write(json.dumps({"pid": os.getpid(), "msg": "LISTENING=1"}) + "\n")
        while time.monotonic() < deadline:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data, anc, _flags, _addr = s.recvmsg(
                    4096, socket.CMSG_SPACE(ucred) + socket.CMSG_SPACE(8 * fdsize))
            except socket.timeout:
                break
            pid = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:ucred])[0]
                elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[:len(payload) - len(payload) % fdsize])
                    for fd in fds:
                        os.close(fd)
            f.write(json.dumps({"pid": pid, "msg": data.decode("utf-8", "replace")}) + "\n")


if __name__ == "__main__":
    main()
