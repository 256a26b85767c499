"""A client test of ./train serve with Python's http.client, independent of test_serve.c's C client.

    python3 dev/serve/client_test.py          (from the repo root, after `make train`)

Starts a server on a tiny random model (--init, seeded) and checks: greedy completions give the ids of
`./train sample` with the same flags, streamed (server-sent events) and not; /health; /metrics parses as
Prometheus text; malformed requests get a 4xx JSON error; keep-alive reuses one connection; and, when
test_tmp/serve_cls.bin exists (test_serve writes it), classification against `./train classify`.
Exits 1 on any failure."""
import http.client
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import ROOT, start_server, stop_server  # noqa: E402

INIT = ["--init", "2,2,32", "--vocab", "256", "--max-seq", "24", "--seed", "7"]
failures = 0


def check(ok, what):
    global failures
    print("[ OK ]" if ok else "[FAIL]", what)
    failures += 0 if ok else 1


def post(conn, path, obj, raw=None):
    body = raw if raw is not None else json.dumps(obj)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.getheader("Content-Type"), r.read()


def main():
    p, port = start_server(INIT + ["--tokenizer", "bytes"])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    prompt = [72, 101, 108, 108, 111]
    ref = subprocess.run(["./train", "sample"] + INIT + ["--tokens", " ".join(map(str, prompt)), "--gen", "40", "--temperature", "0"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    want = [int(x) for x in ref][len(prompt):]
    st, ctype, body = post(conn, "/v1/completions", {"prompt": prompt, "max_tokens": 40, "temperature": 0})
    got = json.loads(body)
    check(st == 200 and ctype == "application/json" and got["choices"][0]["tokens"] == want,
          "greedy completion (40 tokens, past maxT 24): the ids of ./train sample")
    check(got["usage"] == {"prompt_tokens": 5, "completion_tokens": 40, "total_tokens": 45}, "usage: %s" % got["usage"])
    # streamed, on the same keep-alive connection object (the server closes after a stream; http.client reconnects)
    conn.request("POST", "/v1/completions", body=json.dumps({"prompt": "Hello", "max_tokens": 40, "temperature": 0, "stream": True}))
    r = conn.getresponse()
    toks, finish, done = [], None, False
    for line in r:
        line = line.decode().strip()
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            break
        ev = json.loads(line[6:])
        toks += ev["choices"][0]["tokens"]
        finish = ev["choices"][0]["finish_reason"] or finish
    r.read()
    check(r.status == 200 and r.getheader("Content-Type") == "text/event-stream" and done and toks == want and finish == "length",
          "streamed completion of the text prompt: the same ids, finish_reason length, [DONE]")
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/health")
    r = conn.getresponse()
    h = json.loads(r.read())
    check(r.status == 200 and h["status"] == "ok", "/health: %s" % h)
    sock = conn.sock
    conn.request("GET", "/health")
    r = conn.getresponse()
    r.read()
    check(r.status == 200 and conn.sock is sock, "keep-alive: the second request went over the same socket")
    for obj, raw, status, what in [(None, "{not json", 400, "malformed JSON"), ({"max_tokens": 2}, None, 400, "missing prompt"),
                                   ({"prompt": [1] * 30}, None, 400, "prompt longer than the context"),
                                   ({"prompt": "a", "top_p": 2}, None, 400, "top_p out of range")]:
        st, ctype, body = post(conn, "/v1/completions", obj, raw)
        err = json.loads(body)
        check(st == status and "message" in err["error"], "%s: %d %s" % (what, st, err["error"]["message"]))
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    check(r.status == 200 and samples['serve_requests_total{endpoint="/v1/completions"}'] == 6 and
          samples["serve_tokens_generated_total"] == 80, "/metrics: 6 completions counted, 80 tokens generated")
    code, err = stop_server(p)
    check(code == 0 and "stopped cleanly" in err, "SIGTERM: exit %d" % code)
    cls = os.path.join(ROOT, "test_tmp", "serve_cls.bin")
    if os.path.exists(cls):
        texts = ["good film", "terrible, really bad", "a"]
        lines = "\n".join(texts) + "\n"
        ref = subprocess.run(["./train", "classify", "--model", cls, "--tokenizer", "bytes", "--labels", "neg,neu,pos", "--batch", "3"],
                             cwd=ROOT, input=lines, capture_output=True, text=True, check=True).stdout.splitlines()
        p, port = start_server(["--model", cls, "--tokenizer", "bytes", "--labels", "neg,neu,pos", "--batch", "3"])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        st, _, body = post(conn, "/v1/classify", {"texts": texts})
        res = json.loads(body)["results"]
        mine = ["%s\t%.4f\t%s" % (r["label"], r["probability"], t) for r, t in zip(res, texts)]
        check(st == 200 and mine == ref, "classify: labels and probabilities of ./train classify: %s" % mine)
        stop_server(p)
    else:
        print("(no test_tmp/serve_cls.bin: run ./test_serve first to include classification)")
    print("client_test: %s" % ("FAIL" if failures else "OK"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
