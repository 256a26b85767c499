"""Shared by the dev/serve scripts: start `./train serve --port 0` and read the port it prints."""
import os
import re
import signal
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def start_server(flags, log_path=os.environ.get("SERVE_LOG", os.devnull)):
    """Starts ./train serve FLAGS --port 0; returns (process, port). The access log goes to log_path."""
    cmd = [os.path.join(ROOT, "train"), "serve", "--port", "0", "--access-log", log_path] + flags
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"127\.0\.0\.1:(\d+)", line)
    if not m:
        p.kill()
        sys.exit("the server did not start: %r %s" % (line, p.stderr.read()))
    return p, int(m.group(1))


def stop_server(p):
    """SIGTERM, then the exit code and the server's stderr."""
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    return p.returncode, err
