#!/usr/bin/env python3
"""Hostile clients for the status server: idle connections, a slowloris, and a flood of GETs.

usage: http_flood.py HOST PORT [--idle N] [--slowloris] [--get-clients M] [--path P]
                     [--token T] [--pause SECONDS] [--seconds S]

Holds N idle connections (never sending a byte), one slowloris (a request line, then one
header byte a second) and M clients each sending GET P in a loop, for S seconds; then prints
one JSON object:
  idle_opened, idle_closed_by_server, idle_answered_503: what became of the idle connections
  slowloris_closed_after: seconds until the server closed the slowloris (null: never)
  gets: count of each status of the GET clients ("error" for a failed connection)
Standard library only.
"""
import argparse
import json
import resource
import select
import socket
import threading
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--slowloris", action="store_true")
    parser.add_argument("--get-clients", type=int, default=0)
    parser.add_argument("--path", default="/")
    parser.add_argument("--token")
    parser.add_argument("--pause", type=float, default=0)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle + args.get_clients + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))

    deadline = time.monotonic() + args.seconds
    result = {"idle_opened": 0, "idle_closed_by_server": 0, "idle_answered_503": 0,
              "slowloris_closed_after": None, "gets": {}}
    lock = threading.Lock()

    def slowloris():
        started = time.monotonic()
        try:
            s = socket.create_connection((args.host, args.port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            s.settimeout(1)
            while time.monotonic() < deadline + 30:
                try:
                    s.sendall(b"X")
                except OSError:
                    break
                try:
                    if s.recv(4096) == b"":
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
            else:
                return
            result["slowloris_closed_after"] = round(time.monotonic() - started, 2)
        except OSError:
            result["slowloris_closed_after"] = 0

    slow = None
    if args.slowloris:
        # First, so it is under the connection limit: what closes it is the idle timeout.
        slow = threading.Thread(target=slowloris)
        slow.start()
        time.sleep(0.5)
    idle = []
    for _ in range(args.idle):
        try:
            s = socket.create_connection((args.host, args.port), timeout=5)
            s.setblocking(False)
            idle.append(s)
        except OSError:
            break

    def getter():
        headers = ""
        if args.token:
            headers = "Authorization: Bearer %s\r\n" % args.token
        request = ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n" % (args.path, headers)).encode()
        while time.monotonic() < deadline:
            status = "error"
            try:
                with socket.create_connection((args.host, args.port), timeout=10) as s:
                    s.sendall(request)
                    data = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if data.startswith(b"HTTP/1.1 "):
                        status = data[9:12].decode()
            except OSError:
                pass
            with lock:
                result["gets"][status] = result["gets"].get(status, 0) + 1
            if args.pause:
                time.sleep(args.pause)

    result["idle_opened"] = len(idle)
    threads = [threading.Thread(target=getter) for _ in range(args.get_clients)]
    for t in threads:
        t.start()
    if slow:
        threads.append(slow)

    # Watch the idle connections: a 503 or an end of file means the server let go of them.
    open_sockets = {s.fileno(): s for s in idle}
    while time.monotonic() < deadline and open_sockets:
        ready, _, _ = _poll(open_sockets)
        for fd in ready:
            s = open_sockets.pop(fd)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 503"):
                result["idle_answered_503"] += 1
            result["idle_closed_by_server"] += 1
            s.close()
    while time.monotonic() < deadline:
        time.sleep(0.2)
    for t in threads:
        t.join()
    for s in open_sockets.values():
        s.close()
    print(json.dumps(result))


def _poll(open_sockets):
    poller = select.poll()
    for fd in open_sockets:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return ([fd for fd, _ in poller.poll(500)], [], [])


if __name__ == "__main__":
    main()
