# A stand-in Neo node for the agent's operation tests: a real process that listens on
# 127.0.0.1:<port> and answers JSON-RPC like a node, keeps a LOCK file in its data dir while
# it runs, refuses to start when LOCK exists (exit 1, as a LevelDB node does), removes LOCK
# on SIGTERM and leaves it on SIGKILL.
#
#   standin.py --port P --data-dir D
#
# Files in D it obeys: FAIL (refuse to start), SLOW (sleep that many seconds before listening),
# chain/height (the block count it answers, default 100).
import http.server
import json
import os
import signal
import sys
import time

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
port = int(args["--port"])
data = args["--data-dir"]
lock = os.path.join(data, "LOCK")

print(f"INFO stand-in node starting, pid {os.getpid()}, rpc 127.0.0.1:{port}", flush=True)
print("ERROR seed http://u:pw@seed1.example:10333 refused; wallet password=hunter2", flush=True)
if os.path.exists(lock):
    print(f"ERROR cannot open the database: {lock} exists (is another node running?)", flush=True)
    sys.exit(1)
if os.path.exists(os.path.join(data, "FAIL")):
    print("ERROR database corrupt: refusing to start", flush=True)
    sys.exit(1)
slow = os.path.join(data, "SLOW")
if os.path.exists(slow):
    time.sleep(float(open(slow).read().strip() or "1"))


def height():
    try:
        with open(os.path.join(data, "chain", "height")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 100


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(n) or b"{}")
        method = req.get("method")
        answers = {
            "getblockcount": height(),
            "getversion": {"tcpport": port + 1, "nonce": 1, "useragent": "/neo-ir-sim:0.1.0/",
                           "protocol": {"network": 894710606, "msperblock": 1000}},
            "getpeers": {"connected": [{"address": "127.0.0.9", "port": 20333}],
                         "unconnected": [], "bad": []},
            "getconnectioncount": 1,
        }
        if method in answers:
            body = {"jsonrpc": "2.0", "id": req.get("id"), "result": answers[method]}
        else:
            body = {"jsonrpc": "2.0", "id": req.get("id"),
                    "error": {"code": -32601, "message": "Method not found"}}
        self.reply("application/json", json.dumps(body).encode())

    def do_GET(self):
        if self.path == "/metrics":
            text = ("# HELP process_cpu_seconds_total CPU\nprocess_cpu_seconds_total 1.5\n"
                    "process_resident_memory_bytes 123456\nneo_block_height %d\n"
                    "go_goroutines 12\n" % height())
            self.reply("text/plain", text.encode())
        else:
            self.send_error(404)

    def reply(self, ctype, body):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
os.makedirs(data, exist_ok=True)
with open(lock, "w") as f:
    f.write(str(os.getpid()))


def term(*_):
    try:
        os.remove(lock)
    except OSError:
        pass
    print("INFO stand-in node stopped", flush=True)
    os._exit(0)


signal.signal(signal.SIGTERM, term)
print("INFO stand-in node listening", flush=True)
server.serve_forever()
