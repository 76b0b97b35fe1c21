#!/usr/bin/env python3
"""Hook side of the SIPp runs: records every hook baton sends, then checks them.

  hooks.py serve PORT LOG        record each request as a JSON line {path, body}
  hooks.py check SCENARIO LOG N  check the N calls of SCENARIO (paths /SCENARIO/...)
"""
import json
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port, log_path):
    lock = threading.Lock()
    log = open(log_path, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length) if length else b""
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                payload = None
            with lock:
                log.write(json.dumps({"path": self.path, "body": payload}) + "\n")
            reply = b""
            if self.path.endswith("/slow-call"):
                time.sleep(3)  # long enough for the carrier's CANCEL to arrive first
                reply = b'[{"verb": "answer"}]'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# What each call of a scenario must have sent: event codes in order, the actionHook's
# refer_status and final status (None: absent), the call states in order, who hung up.
EXPECT = {
    "happy": ([100, 180, 200], 202, 200, ["trying", "in-progress", "completed"], "baton"),
    "refused": ([], 603, None, ["trying", "in-progress", "completed"], "baton"),
    "busy": ([100, 486], 202, 486, ["trying", "in-progress", "completed"], "baton"),
    "no_notify": ([], 202, None, ["trying", "in-progress", "completed"], "baton"),
    "notify_first": ([180, 200], 202, 200, ["trying", "in-progress", "completed"], "baton"),
    "far_end_bye": ([], 202, None, ["trying", "in-progress", "completed"], "caller"),
    "compact": ([100, 200], 202, 200, ["trying", "in-progress", "completed"], "baton"),
    "headers": ([], 603, None, ["trying", "in-progress", "completed"], "baton"),
    "cancel": (None, None, None, ["trying", "canceled"], "caller"),
    "hook_down": (None, None, None, ["trying", "failed"], "baton"),
}


def check(scenario, log_path, calls):
    events, actions, states, ended_by = (defaultdict(list) for _ in range(4))
    with open(log_path) as f:
        for line in f:
            rec = json.loads(line)
            parts = rec["path"].split("?")[0].strip("/").split("/")
            if parts[0] != scenario or not isinstance(rec["body"], dict):
                continue
            body, kind = rec["body"], parts[-1]
            sid = body.get("call_sid")
            if kind == "event":
                events[sid].append(body["call_status"])
            elif kind == "action":
                actions[sid].append(body)
            elif kind == "status" and "type" not in body:
                states[sid].append(body["call_status"])
                if "call_termination_by" in body:
                    ended_by[sid].append(body["call_termination_by"])
    want_events, want_refer, want_final, want_states, want_by = EXPECT[scenario]
    problems = []
    if len(states) != calls:
        problems.append(f"{len(states)} calls reported, expected {calls}")
    for sid, seen in states.items():
        if seen != want_states:
            problems.append(f"{sid}: states {seen}, expected {want_states}")
        if ended_by[sid] != [want_by]:
            problems.append(f"{sid}: ended by {ended_by[sid]}, expected {want_by}")
        if want_refer is None:
            continue
        if events[sid] != want_events:
            problems.append(f"{sid}: events {events[sid]}, expected {want_events}")
        if len(actions[sid]) != 1:
            problems.append(f"{sid}: {len(actions[sid])} actionHooks, expected exactly 1")
            continue
        a = actions[sid][0]
        if a.get("refer_status") != want_refer or a.get("final_referred_call_status") != want_final:
            problems.append(f"{sid}: actionHook {a.get('refer_status')}/{a.get('final_referred_call_status')}, "
                            f"expected {want_refer}/{want_final}")
    for p in problems[:10]:
        print(f"  {scenario}: {p}")
    if len(problems) > 10:
        print(f"  {scenario}: ... {len(problems) - 10} more problems")
    return not problems


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "check":
        sys.exit(0 if check(sys.argv[2], sys.argv[3], int(sys.argv[4])) else 1)
    else:
        sys.exit(__doc__)
