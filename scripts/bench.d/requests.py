"""Timed requests for scripts/bench, over one kept-alive connection each.

    python3 requests.py batch   ADDRESS KEY          -> five batches of 1,000 versions: min, median, max ms
    python3 requests.py history ADDRESS KEY          -> Markdown rows: filter, p50 and p99 ms of 100 pages
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse

mode, address, key = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = urllib.parse.urlsplit(address).hostname, urllib.parse.urlsplit(address).port
conn = http.client.HTTPConnection(host, port)


def timed(method, path, body=None):
    headers = {"X-ApiKey": key}
    if body is not None:
        headers["Content-Type"] = "application/json"
    start = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    elapsed = (time.perf_counter() - start) * 1000
    if response.status != 200:
        sys.exit(f"{method} {path}: {response.status} {data[:300]!r}")
    return elapsed, data


if mode == "batch":
    # Versions pkg99000..pkg99999 (scripts/bench resets every version to bench-a first).
    times = []
    for run in range(5):
        source, target = ("bench-a", "bench-b") if run % 2 == 0 else ("bench-b", "bench-a")
        packages = [{"name": f"pkg{n}", "version": "1.0.0"} for n in range(99000, 100000)]
        body = json.dumps({"fromFeed": source, "toFeed": target, "packages": packages})
        elapsed, data = timed("POST", "/api/promotions/batch", body)
        assert len(json.loads(data)["items"]) == 1000, data[:300]
        times.append(elapsed)
    print(f"{min(times):.0f} {statistics.median(times):.0f} {max(times):.0f}")
elif mode == "history":
    filters = [
        ("none (newest page)", ""),
        ("fromFeed", "fromFeed=feed-103"),
        ("toFeed", "toFeed=feed-105"),
        ("group", "group=@scope8"),
        ("package", "package=pkg408"),
        ("package + version", "package=pkg408&version=1.8.0"),
        ("fromFeed + package", "fromFeed=feed-103&package=pkg408"),
        ("batch", "batch=00000000-0000-4000-8000-000000000500"),
        ("second page (before=)", "before=500000"),
    ]
    for limit in ("", "limit=50"):
        for name, query in filters:
            path = "/api/promotions/list?" + "&".join(q for q in (query, limit) if q)
            for _ in range(5):
                timed("GET", path)
            times = sorted(timed("GET", path)[0] for _ in range(100))
            rows = len(json.loads(timed("GET", path)[1]))
            print(f"| {name} | {limit or 'default (1000)'} | {rows} | "
                  f"{statistics.median(times):.1f} | {times[98]:.1f} |")
