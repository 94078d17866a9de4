#!/usr/bin/env python3
# relay-node.py - one node of a relay chain over TCP, for
# contrib/bench/bench-relay.sh and tests/kcopy-relay.sh.
#
# usage: relay-node.py ADDR NEXT PIDFILE READY CMD...
#
# Listens on ADDR:$PORT, creates the file READY once it listens, accepts
# one connection as standard input, connects standard output to NEXT:$PORT
# (unless NEXT is '-'), writes its pid to PIDFILE and execs CMD: kcopy then
# reads and writes the sockets themselves, with no relay process between.
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
import os
import socket
import sys

addr, nxt, pidfile, ready = sys.argv[1:5]
port = int(os.environ["PORT"])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((addr, port))
ls.listen(1)
open(ready, "w").close()
conn, _ = ls.accept()
ls.close()
os.dup2(conn.fileno(), 0)
conn.close()
if nxt != "-":
    out = socket.create_connection((nxt, port), timeout=10)
    out.settimeout(None)
    os.dup2(out.fileno(), 1)
    out.close()
with open(pidfile, "w") as f:
    f.write("%d\n" % os.getpid())
os.execvp(sys.argv[5], sys.argv[5:])
