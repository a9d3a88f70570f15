#!/usr/bin/env python3
"""Holds N idle keep-alive connections to ADDR:PORT, each after one request answered, then
prints "ready" and waits until stdin closes. Used by load.sh to measure memory per idle
connection (RSS delta of the proxy under test)."""
import socket, sys, selectors

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
req = b"GET / HTTP/1.1\r\nHost: idle.example.com\r\n\r\n"
socks = []
for i in range(n):
    s = socket.create_connection((host, port))
    s.sendall(req)
    socks.append(s)
# Read each answer (headers and the small body) so every connection is idle in keep-alive.
for s in socks:
    s.settimeout(10)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed before its answer")
        got += chunk
print("ready", flush=True)
sys.stdin.read()
