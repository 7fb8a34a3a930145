"""The Python requests/urllib3 client of the incident replay (make incident),
run with Debian's python3 and python3-requests: one Session whose pool for
the server holds at most POOL connections (pool_block=True), talking to a
keep-alive server that closes idle connections.

  pool_client.py leak  URL POOL PACE_S WAIT_S HOLD_S
      the bug: responses fetched with stream=True are never read nor closed,
      so their connections never go back to the pool; when the server
      closes them, the sockets stay in CLOSE_WAIT. The responses are kept
      (as an application keeps them in a list of pending results): CPython
      frees an unreferenced response at once, closing its socket. Requests
      go out every PACE_S until, with all POOL connections leaked, one waits
      WAIT_S for a connection: the pool is dry. Prints "leaked N" after each response, then "dry" with the
      time, whether the waiting request gave up in the 3 s after (requests'
      timeout= does not bound the wait for a pooled connection), and holds
      until standard input reaches EOF or HOLD_S.
  pool_client.py fixed URL POOL PACE_S WAIT_S REQUESTS IDLE_EVERY IDLE_PAUSE_S
      the fix from docs/runbooks.md: `with session.get(url, stream=True) as
      r:` and read the body, so every connection returns to the pool. Sends
      REQUESTS requests, pausing IDLE_PAUSE_S after every IDLE_EVERY, prints
      "fixed ok N" and exits; any failure, or a request taking 10 s, exits
      1.
"""
import sys
import threading
import time

import requests
from requests.adapters import HTTPAdapter

FIXED_BOUND = 10  # seconds: the most a fixed request may take


def session(pool):
    s = requests.Session()
    s.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=pool, pool_block=True))
    return s


def in_background(fn):
    """Runs fn in a daemon thread; returns the thread and its outcome."""
    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except Exception as e:  # reported by the caller
            outcome["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, outcome


def leak(url, pool, pace, wait, hold):
    s = session(pool)
    pending = []  # the bug: kept, never read nor closed
    for i in range(1, 2 * pool + 1):
        t, outcome = in_background(lambda: s.get(url, stream=True, timeout=wait))
        t.join(wait)
        if t.is_alive() and len(pending) < pool:
            # Connections are left: a slow answer on a busy machine, not a
            # dry pool. Wait for it.
            t.join(30)
            if t.is_alive():
                fail(f"request {i}: no answer after 30 s with {len(pending)} of {pool} connections leaked")
        if t.is_alive():
            print(f"dry {int(time.time() * 1000)}: request {i} waited {wait:g} s for a connection; "
                  f"{len(pending)} responses leaked", flush=True)
            t.join(3)
            if t.is_alive():
                print(f"request {i} still waiting {wait + 3:g} s later, although timeout={wait:g}", flush=True)
            else:
                print(f"request {i} ended: {outcome}", flush=True)
            hold_until_stdin_eof(hold)
            return
        if "error" in outcome:
            fail(f"request {i}: {outcome['error']!r}")
        r = outcome["value"]
        if r.status_code != 200:
            fail(f"request {i}: status {r.status_code}")
        pending.append(r)
        print("leaked", len(pending), flush=True)
        time.sleep(pace)
    fail(f"the pool never ran dry: {2 * pool} requests, {len(pending)} responses leaked")


def fixed(url, pool, pace, wait, requests_, idle_every, idle_pause):
    with session(pool) as s:
        for i in range(1, requests_ + 1):
            def get():
                with s.get(url, stream=True, timeout=FIXED_BOUND) as r:
                    r.raise_for_status()
                    return len(r.content)

            # With every connection released, a request that takes this
            # long means the fix does not work; a busy machine is slower
            # than WAIT_S.
            t, outcome = in_background(get)
            t.join(FIXED_BOUND)
            if t.is_alive():
                fail(f"request {i} waited {FIXED_BOUND} s, the pool is dry")
            if "error" in outcome:
                fail(f"request {i}: {outcome['error']!r}")
            time.sleep(idle_pause if i % idle_every == 0 else pace)
    print("fixed ok", requests_, flush=True)


def hold_until_stdin_eof(hold):
    t = threading.Thread(target=sys.stdin.read, daemon=True)
    t.start()
    t.join(hold)


def fail(why):
    print("pool_client.py:", why, file=sys.stderr, flush=True)
    sys.exit(1)


def positive(s, name, kind=int):
    try:
        v = kind(s)
    except ValueError:
        v = 0
    if v <= 0:
        fail(f"{name} {s!r}: want a positive number")
    return v


def main(argv):
    usage = ("usage: pool_client.py leak URL POOL PACE_S WAIT_S HOLD_S\n"
             "       pool_client.py fixed URL POOL PACE_S WAIT_S REQUESTS IDLE_EVERY IDLE_PAUSE_S")
    if len(argv) >= 6 and argv[0] == "leak" and len(argv) == 6:
        leak(argv[1], positive(argv[2], "POOL"), positive(argv[3], "PACE_S", float),
             positive(argv[4], "WAIT_S", float), positive(argv[5], "HOLD_S", float))
    elif len(argv) == 8 and argv[0] == "fixed":
        fixed(argv[1], positive(argv[2], "POOL"), positive(argv[3], "PACE_S", float),
              positive(argv[4], "WAIT_S", float), positive(argv[5], "REQUESTS"),
              positive(argv[6], "IDLE_EVERY"), positive(argv[7], "IDLE_PAUSE_S", float))
    else:
        fail(usage)


if __name__ == "__main__":
    main(sys.argv[1:])
