#!/usr/bin/env python3
"""A backend for tests/loadtest/test_bottleneck.sh: answers every GET with
200 after DELAY_MS milliseconds of waiting and BURN_MS of CPU work (a busy
loop), one thread per connection. Usage: bottleneck_app.py PORT DELAY_MS BURN_MS"""
import http.server
import sys
import time


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if DELAY:
            time.sleep(DELAY)
        end = time.process_time() + BURN
        while time.process_time() < end:
            pass
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


PORT, DELAY, BURN = int(sys.argv[1]), int(sys.argv[2]) / 1e3, int(sys.argv[3]) / 1e3
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
