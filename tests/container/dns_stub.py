#!/usr/bin/env python3
"""A minimal DNS responder for the container end-to-end test: answers one name with one IPv4
address (A), an empty answer for its other record types, and NXDOMAIN for every other name.
It lets the static license-holder resolve tokenmgr.bitfusion through a Kubernetes-style
resolv.conf (search bitfusion.svc.cluster.local ..., ndots:5) inside a FROM scratch container.

Usage: dns_stub.py LISTEN_ADDR NAME IPV4     (UDP port 53; logs each query to stdout)
"""
import socket
import struct
import sys


def main():
    listen, name, ipv4 = sys.argv[1], sys.argv[2].lower().rstrip("."), sys.argv[3]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((listen, 53))
    print("listening", flush=True)
    while True:
        data, peer = sock.recvfrom(512)
        try:
            txid, _flags, qdcount = struct.unpack(">HHH", data[:6])
            if qdcount != 1:
                continue
            i, labels = 12, []
            while data[i]:
                labels.append(data[i + 1:i + 1 + data[i]].decode("ascii", "replace"))
                i += 1 + data[i]
            qtype, = struct.unpack(">H", data[i + 1:i + 3])
            question = data[12:i + 5]
        except (IndexError, struct.error):
            continue
        qname = ".".join(labels).lower()
        print("query", qname, qtype, flush=True)
        if qname == name:
            answer = b""
            if qtype == 1:
                answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 5, 4) + socket.inet_aton(ipv4)
            header = struct.pack(">HHHHHH", txid, 0x8580, 1, 1 if answer else 0, 0, 0)
        else:
            answer, header = b"", struct.pack(">HHHHHH", txid, 0x8583, 1, 0, 0, 0)
        sock.sendto(header + question + answer, peer)


if __name__ == "__main__":
    main()
