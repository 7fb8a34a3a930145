"""The host-limits replay (make hostlimits-replay), run with Debian's python3.
Every mode names its process (/proc/self/comm) so that the exporter's
process label tells them apart, prints "ready ..." once set up, and ends
when standard input reaches EOF. Loopback only.

  hostlimits.py sink [RCVBUF]
      hl-sink: a listener whose connections are accepted and never read
      (a peer that stopped reading): its receive queues fill to their
      buffer (RCVBUF bytes when given: a small one keeps an orphan's
      window shut, so it stays an orphan), then the writer's send queues
      hold the rest. Prints "ready PORT".
  hostlimits.py writer PORT N
      hl-writer: N connections to 127.0.0.1:PORT that keep writing whenever
      the kernel lets them (non-blocking sends until EAGAIN, again every
      50 ms). Prints "ready BYTES" after the first fill.
  hostlimits.py orphaner PORT
      hl-orphaner: for every number K read on standard input, K times (10 a
      second): connect to 127.0.0.1:PORT with a 16 KiB send buffer, fill
      the send queue, close(): an orphan in FIN_WAIT1 (unsent data, the
      peer's window shut). Prints "orphaned TOTAL" after each batch.
  hostlimits.py listener
      hl-listener: a listener with a backlog of 1 that never accepts.
      Prints "ready PORT".
  hostlimits.py knocker PORT
      hl-knocker: a non-blocking connect() to 127.0.0.1:PORT every 100 ms,
      keeping the last 20 attempts open, so that the listener's full queue
      drops SYNs. Prints "ready".
"""
import errno
import os
import select
import socket
import sys
import threading
import time

done = threading.Event()


def name(comm):
    with open("/proc/self/comm", "w") as f:
        f.write(comm)


def watch_stdin():
    for _ in sys.stdin:
        pass
    done.set()


def say(*words):
    print(*words, flush=True)


def fill(sock):
    """Sends until the kernel refuses more; returns the bytes sent."""
    chunk = b"x" * 65536
    sent = 0
    for _ in range(10000):  # bounded: a send queue holds a few MB at most
        try:
            sent += sock.send(chunk)
        except (BlockingIOError, InterruptedError):
            break
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.ENOBUFS, errno.ENOMEM):
                break
            raise
    return sent


def sink(rcvbuf):
    name("hl-sink")
    l = socket.socket()
    if rcvbuf:
        l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    l.bind(("127.0.0.1", 0))
    l.listen(1024)
    held = []
    threading.Thread(target=watch_stdin, daemon=True).start()
    say("ready", l.getsockname()[1])
    while not done.is_set():
        r, _, _ = select.select([l], [], [], 0.2)
        if r:
            c, _ = l.accept()
            held.append(c)  # never read


def writer(port, n):
    name("hl-writer")
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    total = sum(fill(s) for s in socks)
    threading.Thread(target=watch_stdin, daemon=True).start()
    say("ready", total)
    while not done.wait(0.05):
        for s in socks:
            fill(s)


def orphaner(port):
    name("hl-orphaner")
    total = 0
    for line in sys.stdin:
        k = int(line)
        for _ in range(k):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            fill(s)
            s.close()
            total += 1
            time.sleep(0.1)
        say("orphaned", total)


def listener():
    name("hl-listener")
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(1)
    say("ready", l.getsockname()[1])
    watch_stdin()


def knocker(port):
    name("hl-knocker")
    threading.Thread(target=watch_stdin, daemon=True).start()
    attempts = []
    say("ready")
    while not done.wait(0.1):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        attempts.append(s)
        if len(attempts) > 20:
            attempts.pop(0).close()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "sink":
        sink(int(args[0]) if args else 0)
    elif mode == "writer":
        writer(int(args[0]), int(args[1]))
    elif mode == "orphaner":
        orphaner(int(args[0]))
    elif mode == "listener":
        listener()
    elif mode == "knocker":
        knocker(int(args[0]))
    else:
        sys.exit("unknown mode " + mode)
