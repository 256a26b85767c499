"""A bounded load test of ./train serve: C concurrent clients (threads, each with its own keep-alive
http.client connection) send N requests in all, stopping early at a time limit; prints throughput and
p50/p99 latency, and fails (exit 1) on any error, any 503 or any request sent without a full answer.

    python3 dev/serve/load_test.py                                  # a tiny model, completions then classify
    python3 dev/serve/load_test.py --endpoint classify --server "--model M.bin --tokenizer PATH" \
        --clients 8 --requests 500 --time-limit 60
    python3 dev/serve/load_test.py --port 8080 --endpoint completions   # a server that is already running

Latency is measured by the client: from sending the request to reading the last byte of the answer."""
import argparse
import http.client
import json
import os
import shlex
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import ROOT, start_server, stop_server  # noqa: E402

TEXTS = ["a wonderful, moving film", "the plot made no sense at all", "it was fine I guess", "two hours I will not get back",
         "the actors were great", "boring", "I would watch it again", "a mess from start to finish"]


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def run(port, endpoint, clients, requests, time_limit, max_tokens, texts_per_request):
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "errors": {}, "lost": 0, "tokens": 0, "texts": 0}
    lat = []
    t_end = time.time() + time_limit

    def body(i):
        if endpoint == "completions":
            return {"prompt": [464 % 256 + i % 7, 3290 % 256], "max_tokens": max_tokens, "temperature": 0}
        return {"texts": [TEXTS[(i + k) % len(TEXTS)] for k in range(texts_per_request)]}

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if state["next"] >= requests or time.time() > t_end:
                    break
                i = state["next"]
                state["next"] += 1
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/" + endpoint, body=json.dumps(body(i)), headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                dt = time.perf_counter() - t0
                with lock:
                    if r.status == 200:
                        state["ok"] += 1
                        lat.append(dt)
                        j = json.loads(data)
                        if endpoint == "completions":
                            state["tokens"] += j["usage"]["completion_tokens"]
                        else:
                            state["texts"] += len(j["results"])
                    else:
                        state["errors"][r.status] = state["errors"].get(r.status, 0) + 1
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    state["lost"] += 1
                    print("lost request %d: %r" % (i, e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    sent = state["next"]
    line = "%s: %d clients, %d/%d requests sent in %.1f s, %d ok, errors %s, lost %d; %.1f requests/s" % (
        endpoint, clients, sent, requests, wall, state["ok"], state["errors"] or "none", state["lost"], state["ok"] / wall)
    if endpoint == "completions":
        line += ", %.1f tokens/s" % (state["tokens"] / wall)
    else:
        line += ", %.1f texts/s" % (state["texts"] / wall)
    line += "; latency p50 %.1f ms, p99 %.1f ms" % (1e3 * percentile(lat, 0.50), 1e3 * percentile(lat, 0.99))
    print(line)
    return state["ok"] == sent and not state["errors"] and not state["lost"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, help="a running server (default: start one with --server)")
    ap.add_argument("--server", help="flags for ./train serve (default: a tiny seeded model per endpoint)")
    ap.add_argument("--endpoint", choices=["completions", "classify", "both"], default="both")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds; no new request starts after it")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--texts", type=int, default=1, help="texts per classify request")
    a = ap.parse_args()
    ok = True
    for ep in (["completions", "classify"] if a.endpoint == "both" else [a.endpoint]):
        p = None
        port = a.port
        if port is None:
            if a.server:
                flags = shlex.split(a.server)
            elif ep == "completions":
                flags = ["--init", "2,2,32", "--vocab", "256", "--max-seq", "64", "--seed", "7"]
            else:
                cls = os.path.join(ROOT, "test_tmp", "serve_cls.bin")
                if not os.path.exists(cls):
                    print("classify: skipped (no test_tmp/serve_cls.bin: run ./test_serve first, or give --server)")
                    continue
                flags = ["--model", cls, "--tokenizer", "bytes"]
            p, port = start_server(flags)
        ok = run(port, ep, a.clients, a.requests, a.time_limit, a.max_tokens, a.texts) and ok
        if p:
            code, err = stop_server(p)
            ok = ok and code == 0
    print("load_test: %s" % ("OK" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
