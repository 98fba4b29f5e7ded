"""`llmforge serve` for the reference tests: started on a free port (--port 0), its address read from the line it
logs when it listens, its stderr kept (and drained, so that it never blocks on a full pipe)."""
import json
import re
import signal
import subprocess
import threading
import urllib.error
import urllib.request


class Served:
    """`BIN serve ARGS… --port 0`; url is None if it did not start (then err holds what it said)."""

    def __init__(self, bin_, args, env=None):
        self.p = subprocess.Popen([bin_, "serve", "--port", "0"] + list(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  env=env)
        self.lines, self.url, self.err = [], None, ""
        for line in self.p.stderr:
            self.lines.append(line)
            m = re.search(r"listening on (http://[\d.]+:\d+)", line)
            if m:
                self.url = m.group(1)
                break
        self.drain = threading.Thread(target=lambda: self.lines.extend(self.p.stderr), daemon=True)
        self.drain.start()
        if self.url is None:
            self.p.wait()
            self.err = "".join(self.lines)

    def log(self):
        return "".join(self.lines)

    def post(self, path, body, timeout=60):
        """(status, body text) of a JSON POST to path."""
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post_json(self, path, body, timeout=60):
        """(status, the answer's JSON) of a JSON POST to path."""
        status, text = self.post(path, body, timeout)
        return status, json.loads(text)

    def get_json(self, path, timeout=60):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.drain.join(timeout=5)
        self.err = "".join(self.lines)
