"""The Python requests client of the file-descriptor replay (make incident),
run with Debian's python3 and python3-requests under `prlimit --nofile=N`.

  fd_client.py leak  COMM URL PACE_S
      the bug: a new requests.Session for every request, never closed, and
      kept (registered in a list, as a per-call client object often is), so
      CPython never frees it. The server closes each idle connection after
      its idle timeout; the client never closes its side, so each session
      holds one socket in CLOSE_WAIT and one file descriptor. One request
      every PACE_S seconds. At the first failure it prints
      "first-emfile UNIX_MS LAST_OK_MS ERROR" (when the error is EMFILE,
      "Too many open files"; "first-failure ..." otherwise), LAST_OK_MS the
      time of the last request that succeeded (the one that took the last
      free descriptor), and keeps trying at
      the same pace (each attempt fails), until standard input reaches EOF;
      then prints "leak ok N failed F".
  fd_client.py fixed COMM URL PACE_S
      the fix from docs/runbooks.md: one requests.Session, shared by every
      request and closed at the end (`with requests.Session() as s:`). Same
      pace, until standard input reaches EOF; then prints
      "fixed ok N failed F".

COMM renames the process (/proc/self/comm), so that the exporter's
`process` label tells the two apart from any other python3.
"""
import errno
import sys
import threading
import time

import requests


def name(comm):
    with open("/proc/self/comm", "w") as f:
        f.write(comm[:15])


def paced(pace, stop):
    """Yields once every pace seconds, on a fixed schedule, until stop()."""
    start = time.monotonic()
    n = 0
    while not stop():
        delay = start + n * pace - time.monotonic()
        n += 1
        if delay > 0:
            time.sleep(delay)
        yield


def stdin_eof():
    eof = threading.Event()

    def watch():
        sys.stdin.read()
        eof.set()

    threading.Thread(target=watch, daemon=True).start()
    return eof


def is_emfile(e):
    """Whether a requests error comes from EMFILE, wrapped as it may be."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno == errno.EMFILE:
            return True
        if "Too many open files" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def leak(url, pace):
    eof = stdin_eof()
    sessions = []  # the leak: every session is kept, none is closed
    ok = failed = 0
    last_ok = 0
    for _ in paced(pace, eof.is_set):
        s = requests.Session()
        try:
            s.get(url, timeout=5).content
            sessions.append(s)
            ok += 1
            last_ok = time.time() * 1000
        except (requests.exceptions.RequestException, OSError) as e:
            failed += 1
            if failed == 1:
                kind = "first-emfile" if is_emfile(e) else "first-failure"
                print("%s %d %d %s" % (kind, time.time() * 1000, last_ok, e), flush=True)
    print("leak ok %d failed %d" % (ok, failed), flush=True)
    return 0


def fixed(url, pace):
    eof = stdin_eof()
    ok = failed = 0
    with requests.Session() as s:
        for _ in paced(pace, eof.is_set):
            try:
                s.get(url, timeout=5).content
                ok += 1
            except requests.exceptions.RequestException as e:
                failed += 1
                print("failed %s" % e, flush=True)
    print("fixed ok %d failed %d" % (ok, failed), flush=True)
    return 0


def main(argv):
    if len(argv) == 5 and argv[1] in ("leak", "fixed"):
        name(argv[2])
        print("ready", flush=True)
        return (leak if argv[1] == "leak" else fixed)(argv[3], float(argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
