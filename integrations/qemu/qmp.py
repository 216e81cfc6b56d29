#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""qmp.py - one QMP command to a QEMU's QMP socket, its answer as JSON.

    qmp.py SOCKET COMMAND [ARGUMENTS-AS-JSON]

Connects to the unix socket SOCKET (QEMU started with
-qmp unix:SOCKET,server=on,wait=off), negotiates capabilities, runs COMMAND
with the JSON object ARGUMENTS, prints the "return" value as one line of
JSON and exits 0; on a QMP error prints its class and description on
stderr and exits 1; exits 2 when the socket cannot be reached or the
answer is not QMP.  Events QEMU sends meanwhile are skipped.  Standard
library only (Debian's python3, which QEMU's build needs anyway).
"""
import json
import socket
import sys


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 2
    path, cmd = argv[1], argv[2]
    try:
        args = json.loads(argv[3]) if len(argv) == 4 else {}
    except json.JSONDecodeError as e:
        sys.stderr.write(f"qmp.py: ARGUMENTS is not JSON: {e}\n")
        return 2
    if not isinstance(args, dict):
        sys.stderr.write("qmp.py: ARGUMENTS must be a JSON object\n")
        return 2
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(path)
        f = sock.makefile("rw", encoding="utf-8", newline="\n")

        def answer():
            for line in f:
                msg = json.loads(line)
                if "event" in msg:
                    continue
                return msg
            raise ConnectionError("QEMU closed the QMP socket")

        greeting = answer()
        if "QMP" not in greeting:
            raise ConnectionError(f"not a QMP greeting: {greeting}")
        for c, a in (("qmp_capabilities", {}), (cmd, args)):
            f.write(json.dumps({"execute": c, "arguments": a}) + "\n")
            f.flush()
            msg = answer()
            if "error" in msg:
                err = msg["error"]
                sys.stderr.write(f"qmp.py: {c}: {err.get('class')}: "
                                 f"{err.get('desc')}\n")
                return 1
        print(json.dumps(msg.get("return")))
        return 0
    except (OSError, ConnectionError, ValueError) as e:
        sys.stderr.write(f"qmp.py: {path}: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
