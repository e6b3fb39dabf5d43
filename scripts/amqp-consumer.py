#!/usr/bin/env python3
"""A minimal AMQP 0-9-1 consumer (Python standard library only) for scripts/record-fixtures.sh.

Usage: amqp-consumer.py HOST PORT VHOST QUEUE PREFETCH

Connects as guest/guest, sets basic.qos PREFETCH, consumes QUEUE without acknowledging and
prints "consuming" once the broker confirmed the consumer; then holds the messages it received
(they stay unacknowledged) until it is killed. No heartbeats (negotiated to 0).
"""

import socket
import struct
import sys


def main():
    host, port, vhost, queue, prefetch = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    sock = socket.create_connection((host, port), timeout=10)
    buf = bytearray()

    def recv_exact(n):
        while len(buf) < n:
            data = sock.recv(65536)
            if not data:
                sys.exit("amqp-consumer: the broker closed the connection")
            buf.extend(data)
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def read_frame():
        kind, channel, size = struct.unpack(">BHI", recv_exact(7))
        payload = recv_exact(size)
        if recv_exact(1) != b"\xce":
            sys.exit("amqp-consumer: bad frame end")
        return kind, channel, payload

    def send_method(channel, cls, method, args=b""):
        payload = struct.pack(">HH", cls, method) + args
        sock.sendall(struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce")

    def expect(cls, method):
        while True:
            kind, _, payload = read_frame()
            if kind != 1:
                continue
            got = struct.unpack(">HH", payload[:4])
            if got == (cls, method):
                return payload[4:]
            if got in ((10, 50), (20, 40)):  # connection.close, channel.close
                code, length = struct.unpack(">HB", payload[4:7])
                sys.exit("amqp-consumer: closed by the broker: %d %s" % (code, payload[7:7 + length].decode()))

    def shortstr(text):
        data = text.encode()
        return bytes([len(data)]) + data

    def longstr(data):
        return struct.pack(">I", len(data)) + data

    empty_table = struct.pack(">I", 0)
    sock.sendall(b"AMQP\x00\x00\x09\x01")
    expect(10, 10)  # connection.start
    send_method(0, 10, 11, empty_table + shortstr("PLAIN") + longstr(b"\x00guest\x00guest") + shortstr("en_US"))
    tune = expect(10, 30)  # connection.tune
    channel_max, frame_max, _ = struct.unpack(">HIH", tune[:8])
    send_method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0))  # tune-ok, no heartbeats
    send_method(0, 10, 40, shortstr(vhost) + shortstr("") + b"\x00")  # connection.open
    expect(10, 41)
    send_method(1, 20, 10, shortstr(""))  # channel.open
    expect(20, 11)
    send_method(1, 60, 10, struct.pack(">IHB", 0, prefetch, 0))  # basic.qos
    expect(60, 11)
    # basic.consume: reserved, queue, consumer tag, no-local/no-ack/exclusive/no-wait, arguments
    send_method(1, 60, 20, struct.pack(">H", 0) + shortstr(queue) + shortstr("") + b"\x00" + empty_table)
    expect(60, 21)
    print("consuming", flush=True)
    sock.settimeout(None)
    while True:
        read_frame()


if __name__ == "__main__":
    main()
