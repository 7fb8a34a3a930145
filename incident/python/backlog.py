"""The accept-queue replay (make incident), run with Debian's python3 and
python3-requests.

  backlog.py server HOST PORT BACKLOG
      an HTTP server listening with a backlog of BACKLOG that answers every
      request "ok". Standard input drives it: "stop" stops calling
      accept() (a server stuck in a deadlock or a long pause), "accept"
      resumes; it prints "stopped" and "accepting" when it has.
  backlog.py client URL PACE_S TIMEOUT_S
      requests.get(url, timeout=TIMEOUT_S) every PACE_S, printing "ok MS"
      or "timeout MS" (the time, unix milliseconds) for each, until
      standard input reaches EOF.
"""
import socket
import sys
import threading
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def serve_one(conn):
    try:
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        conn.sendall(RESPONSE)
    except OSError:
        pass
    finally:
        conn.close()


def server(host, port, backlog):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(backlog)
    s.settimeout(0.1)  # so that "stop" takes effect between accept() calls
    accepting = threading.Event()
    accepting.set()

    def loop():
        while True:
            if not accepting.is_set():
                time.sleep(0.05)
                continue
            try:
                conn, _ = s.accept()
            except socket.timeout:
                continue
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stop":
            accepting.clear()
            time.sleep(0.2)  # an accept() under way returns within 0.1 s
            print("stopped", flush=True)
        elif cmd == "accept":
            accepting.set()
            print("accepting", flush=True)
    return 0


def client(url, pace, timeout):
    import requests

    eof = threading.Event()

    def watch():
        sys.stdin.read()
        eof.set()

    threading.Thread(target=watch, daemon=True).start()
    while not eof.is_set():
        try:
            requests.get(url, timeout=timeout).content
            print("ok %d" % (time.time() * 1000), flush=True)
        except requests.exceptions.Timeout:
            print("timeout %d" % (time.time() * 1000), flush=True)
        except requests.exceptions.ConnectionError as e:
            print("error %d %s" % (time.time() * 1000, e), flush=True)
        time.sleep(pace)
    return 0


def main(argv):
    if len(argv) == 5 and argv[1] == "server":
        return server(argv[2], int(argv[3]), int(argv[4]))
    if len(argv) == 5 and argv[1] == "client":
        return client(argv[2], float(argv[3]), float(argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
