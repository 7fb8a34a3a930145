"""The Python requests client of the port-exhaustion replay (make incident),
run with Debian's python3 and python3-requests.

  port_client.py new     URL RATE1 SURGE_AFTER_S RATE2 MAX_S
      the bug: requests.get(url) for every request, without a Session: each
      request opens a connection and closes it first, so its local port
      stays in TIME_WAIT for 60 seconds. Sends RATE1 requests a second, and
      RATE2 from SURGE_AFTER_S on (the day's peak), until connect() fails:
      prints "first-failure UNIX_MS ERROR" and exits 0; "no-failure N"
      after MAX_S.
  port_client.py session URL RATE1 SURGE_AFTER_S RATE2
      the fix from docs/runbooks.md: one requests.Session for every
      request, so one kept-alive connection carries them all. Same pace,
      until standard input reaches EOF; then prints "fixed ok N failed F".
"""
import sys
import threading
import time

import requests


def paced(rate1, surge_after, rate2, stop):
    """Yields request times: rate1 a second, then rate2 after surge_after."""
    start = time.monotonic()
    n1 = 0
    n2 = 0
    while not stop():
        elapsed = time.monotonic() - start
        if elapsed < surge_after:
            due = n1 / rate1
            n1 += 1
        else:
            due = surge_after + n2 / rate2
            n2 += 1
        delay = start + due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield


def new_connections(url, rate1, surge_after, rate2, max_s):
    deadline = time.monotonic() + max_s
    n = 0
    for _ in paced(rate1, surge_after, rate2, lambda: time.monotonic() > deadline):
        try:
            requests.get(url, timeout=5).content
            n += 1
        except requests.exceptions.ConnectionError as e:
            print("first-failure %d %s" % (time.time() * 1000, e), flush=True)
            return 0
    print("no-failure %d" % n, flush=True)
    return 0


def session(url, rate1, surge_after, rate2):
    eof = threading.Event()

    def watch():
        sys.stdin.read()
        eof.set()

    threading.Thread(target=watch, daemon=True).start()
    s = requests.Session()
    ok = failed = 0
    for _ in paced(rate1, surge_after, rate2, eof.is_set):
        try:
            s.get(url, timeout=5).content
            ok += 1
        except requests.exceptions.RequestException as e:
            failed += 1
            print("failed %s" % e, flush=True)
    print("fixed ok %d failed %d" % (ok, failed), flush=True)
    return 0


def main(argv):
    if len(argv) >= 6 and argv[1] == "new":
        return new_connections(argv[2], float(argv[3]), float(argv[4]), float(argv[5]), float(argv[6]))
    if len(argv) == 6 and argv[1] == "session":
        return session(argv[2], float(argv[3]), float(argv[4]), float(argv[5]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
