# https targets against a real nginx TLS listener on 127.0.0.1 with a test
# CA and two server certificates made here by openssl (a.test with the IP
# 127.0.0.1, b.test on a second server_name):
# - verification passes with tls.ca_file; the IP is verified, no SNI sent;
# - without the CA every request fails with kind "tls" and "certificate
#   verify failed: ...", exit 98 "the target did not answer"; a wrong
#   server_name fails with "hostname mismatch";
# - insecure_skip_tls_verify (option and -insecure-skip-tls-verify) works and
#   is marked in the text, JSON and HTML reports;
# - SNI reaches the server (nginx answers $ssl_server_name; the b.test
#   certificate only verifies when it did);
# - keep-alive: handshakes about the VUs, requests thousands;
# - resumption: a location that closes every 5th request makes VUs
#   reconnect, and they resume (iac's count and nginx's $ssl_session_reused).
. "$(dirname "$0")/lib.sh"
t_need nginx openssl

# ---- a CA and two server certificates --------------------------------
P=$T/pki
mkdir -p "$P"
cd "$P"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=iac test CA" \
	-keyout ca.key -out ca.pem 2> /dev/null
for n in a b; do
	san="DNS:$n.test"
	[ "$n" = a ] && san="$san,IP:127.0.0.1"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$n.test" \
		-keyout "$n.key" -out "$n.csr" 2> /dev/null
	printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" > "$n.ext"
	openssl x509 -req -in "$n.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile "$n.ext" \
		-out "$n.pem" 2> /dev/null
done
cd - > /dev/null

# ---- nginx: TLS on PORT, a.test (default) and b.test -----------------
PORT=$(free_port)
PORT12=$(free_port)   # TLS 1.2 only: resumption by session, not ticket-only TLS 1.3
d=$T/nginx
mkdir -p "$d/www" "$d/tmp"
head -c 1024 /dev/zero | tr '\0' 'x' > "$d/www/1k.html"
cp "$d/www/1k.html" "$d/www/short.html"
cat > "$d/nginx.conf" <<EOC
worker_processes 1;
master_process off;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 4096; }
http {
  log_format tls '\$connection \$connection_requests sni=\$ssl_server_name reused=\$ssl_session_reused '
                 '\$ssl_protocol \$request_uri';
  access_log $d/access.log tls;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:1m;
  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
  server {
    listen 127.0.0.1:$PORT ssl default_server;
    server_name a.test;
    ssl_certificate $P/a.pem; ssl_certificate_key $P/a.key;
    root $d/www;
    location = /sni { default_type text/plain; return 200 "\$ssl_server_name\n"; }
    location = /short.html { keepalive_requests 5; }
  }
  server {
    listen 127.0.0.1:$PORT12 ssl;
    ssl_protocols TLSv1.2;
    ssl_certificate $P/a.pem; ssl_certificate_key $P/a.key;
    root $d/www;
    location = /short.html { keepalive_requests 5; }
  }
  server {
    listen 127.0.0.1:$PORT ssl;
    server_name b.test;
    ssl_certificate $P/b.pem; ssl_certificate_key $P/b.key;
  }
}
EOC
nginx -c "$d/nginx.conf" -p "$d" &
PIDS+=($!)
wait_port "$PORT"
wait_port "$PORT12"
LOG=$d/access.log

# ---- verified with ca_file; keep-alive ---------------------------------
cat > "$T/ok.lua" <<EOF2
target "https://127.0.0.1:$PORT/1k.html"
load { vus = 4, duration = "2s", tls = { ca_file = "$P/ca.pem" } }
thresholds { http_req_failed = "rate<0.01" }
EOF2
rc=0
"$IAC" loadtest "$T/ok.lua" -threads 2 -json "$T/ok.json" -html "$T/ok.html" > "$T/ok.out" 2>&1 || rc=$?
cat "$T/ok.out"
[ "$rc" = 0 ] || fail "a verified https run must pass, got $rc"
grep -q "^  tls           [0-9]* handshakes ([0-9]* resumed)  p50 " "$T/ok.out" || fail "no tls line in the summary"
grep -q "VERIFICATION OFF" "$T/ok.out" && fail "a verified run is marked insecure"
"$PY" - "$T/ok.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["tls"]
print(f"verified: {d['requests']} requests, {t['handshakes']} handshakes, p50 {t['handshake_ms']['p50']} ms")
assert d["errors"]["total"] == 0, d["errors"]
assert d["status"]["200"] == d["requests"] > 1000, d["status"]
assert t["verify"] is True and t["insecure_skip_tls_verify"] is False
# keep-alive: one handshake per VU (4), not per request
assert 4 <= t["handshakes"] <= 8 and t["handshakes"] * 100 < d["requests"], t
assert t["handshake_ms"]["p50"] is not None and t["handshake_ms"]["p50"] > 0, t
assert t["errors"] == [], t
EOP
[ $? = 0 ] || fail "verified run figures"
"$PY" "$(dirname "$0")/check_json_shape.py" "$T/ok.json" || fail "JSON shape"
grep -q '<td>TLS certificate verification</td><td>on</td>' "$T/ok.html" || fail "HTML: verification on"
grep -q 'tls-insecure' "$T/ok.html" && fail "HTML: a verified run is marked insecure"
# an IP target sends no SNI (RFC 6066) and nginx saw TLS on every request
grep ' /1k.html$' "$LOG" > "$T/ok.log" || true
conns=$(wc -l < "$T/ok.log")
[ "$conns" -gt 1000 ] || fail "nginx logged $conns requests"
grep -v -q " sni=- " "$T/ok.log" && fail "an IP target sent SNI"
[ "$(grep -c ' TLSv1.3 ' "$T/ok.log")" = "$conns" ] || fail "not TLS 1.3"
distinct=$(awk '{print $1}' "$T/ok.log" | sort -u | wc -l)
echo "nginx: $conns requests on $distinct connections"
[ "$distinct" -le 8 ] || fail "keep-alive: $distinct connections for 4 VUs"

# ---- SNI: server_name b.test reaches nginx (which picks the b.test
# certificate by it, the only one that verifies for b.test, and answers
# $ssl_server_name; the virtual server is chosen by the Host header) ------
cat > "$T/sni.lua" <<EOF2
target "https://127.0.0.1:$PORT"
scenario "sni" {
  flow = function(u)
    local r = u:get("/sni")
    u:check(r.status == 200 and r.body == "b.test\n", "b.test answered")
    -- an absolute https URL from a flow: its own address and connection
    r = u:get("https://127.0.0.1:$PORT12/1k.html")
    u:check(r.status == 200 and #r.body == 1024, "absolute https URL")
  end,
}
load { vus = 1, duration = "0.5s", tls = { ca_file = "$P/ca.pem", server_name = "b.test" } }
thresholds { checks = "rate>0.99" }
EOF2
rc=0
"$IAC" loadtest "$T/sni.lua" -json "$T/sni.json" > "$T/sni.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$T/sni.out"; fail "SNI b.test: exit $rc"; }
grep -q 'sni=b.test' "$LOG" || fail "nginx did not see SNI b.test"
[ "$(json "$T/sni.json" 'd["checks"]["b.test answered"]["fails"]')" = 0 ] || fail "b.test did not answer"
[ "$(json "$T/sni.json" 'd["checks"]["absolute https URL"]["fails"]')" = 0 ] || fail "an absolute https URL failed"
# a VU has one connection: alternating between two addresses reconnects
# each time, and resumes at each (a session per address and VU)
"$PY" - "$T/sni.json" <<'EOP'
import json, sys
t = json.load(open(sys.argv[1]))["tls"]
print(f"two addresses: {t['handshakes']} handshakes, {t['resumed']} resumed")
assert t["handshakes"] > 4 and t["resumed"] == t["handshakes"] - 2, t
EOP
[ $? = 0 ] || fail "resumption across two addresses"

# a CA file that cannot be read is an error before any request (exit 1)
rc=0
"$IAC" loadtest "$T/sni.lua" -ca-file "$T/nope.pem" 2> "$T/noca-file.err" || rc=$?
[ "$rc" = 1 ] && grep -q "cannot read the CA file '$T/nope.pem'" "$T/noca-file.err" ||
	{ cat "$T/noca-file.err"; fail "an unreadable -ca-file must be an error"; }

# ---- without the CA: every request fails, clearly, exit 98 --------------
sed -e "s|, tls = { ca_file = \"$P/ca.pem\" }||" "$T/ok.lua" > "$T/noca.lua"
grep -q ca_file "$T/noca.lua" && fail "test setup: ca_file still in noca.lua"
rc=0
"$IAC" loadtest "$T/noca.lua" -json "$T/noca.json" -html "$T/noca.html" > "$T/noca.out" 2> "$T/noca.err" || rc=$?
cat "$T/noca.out" "$T/noca.err"
[ "$rc" = 98 ] || fail "an unverified certificate must exit 98, got $rc"
grep -q "^error: the target did not answer: [0-9,]* of [0-9,]* requests failed (tls: [0-9]* (certificate verify failed: " \
	"$T/noca.err" || fail "no clear TLS message on stderr"
"$PY" - "$T/noca.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["tls"]
print("no CA:", d["errors"], t["errors"])
assert d["requests"] >= 1 and d["errors"]["by_kind"] == {"tls": d["requests"]}, d["errors"]
assert t["errors"][0]["message"].startswith("certificate verify failed: "), t
assert t["handshakes"] == 0 and d["verdict"]["http_req_failed"] == 1.0
# a refused certificate backs off like a refused connect: no spinning
assert d["requests"] < 200, d["requests"]
EOP
[ $? = 0 ] || fail "no-CA figures"
"$PY" "$(dirname "$0")/check_json_shape.py" "$T/noca.json" || fail "JSON shape (no CA)"
grep -q 'certificate verify failed' "$T/noca.html" || fail "HTML: no TLS reason"

# ---- a name the certificate does not have ------------------------------
cat > "$T/wrongname.lua" <<EOF2
target "https://127.0.0.1:$PORT/1k.html"
load { vus = 1, duration = "0.5s", tls = { ca_file = "$P/ca.pem", server_name = "c.test" } }
EOF2
rc=0
"$IAC" loadtest "$T/wrongname.lua" -quiet 2> "$T/wrongname.err" || rc=$?
cat "$T/wrongname.err"
[ "$rc" = 98 ] || fail "a wrong name must exit 98, got $rc"
grep -q "certificate verify failed: hostname mismatch" "$T/wrongname.err" || fail "no 'hostname mismatch'"

# ---- insecure_skip_tls_verify: works, and says so everywhere -----------
rc=0
"$IAC" loadtest "$T/noca.lua" -duration 1s -insecure-skip-tls-verify -json "$T/insecure.json" \
	-html "$T/insecure.html" > "$T/insecure.out" 2>&1 || rc=$?
cat "$T/insecure.out"
[ "$rc" = 0 ] || fail "-insecure-skip-tls-verify must pass, got $rc"
grep -q "TLS VERIFICATION OFF" "$T/insecure.out" || fail "text: insecure run not marked"
grep -q 'id="tls-insecure"' "$T/insecure.html" || fail "HTML: insecure run not marked"
"$PY" - "$T/insecure.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["errors"]["total"] == 0 and d["requests"] > 100
assert d["tls"]["verify"] is False and d["tls"]["insecure_skip_tls_verify"] is True
assert any("insecure_skip_tls_verify" in n for n in d["notes"]), d["notes"]
EOP
[ $? = 0 ] || fail "insecure JSON"
sed -e 's|duration = "2s"|duration = "0.5s", tls = { insecure_skip_tls_verify = true }|' "$T/noca.lua" > "$T/insecure.lua"
rc=0
"$IAC" loadtest "$T/insecure.lua" > "$T/insecure2.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$T/insecure2.out"; fail "tls.insecure_skip_tls_verify must pass, got $rc"; }
grep -q "TLS VERIFICATION OFF" "$T/insecure2.out" || fail "text: option insecure run not marked"

# ---- resumption: nginx closes every 5th request, VUs resume -------------
: > "$LOG"
cat > "$T/resume.lua" <<EOF2
target "https://127.0.0.1:$PORT/short.html"
load { vus = 2, duration = "1s", tls = { ca_file = "$P/ca.pem" } }
EOF2
rc=0
"$IAC" loadtest "$T/resume.lua" -json "$T/resume.json" > "$T/resume.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$T/resume.out"; fail "resumption run: exit $rc"; }
grep tls "$T/resume.out"
"$PY" - "$T/resume.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["tls"]
print(f"resumption: {d['requests']} requests, {t['handshakes']} handshakes, {t['resumed']} resumed")
assert d["errors"]["total"] == 0, d["errors"]
# 5 requests per connection
assert t["handshakes"] * 5 >= d["requests"] - 10 and t["handshakes"] > 20, t
# all but each VU's first connection resume
assert t["resumed"] >= t["handshakes"] - 4, t
# a handshake takes time, even one that ends within the call that began it
assert t["handshake_ms"]["min"] > 0, t
EOP
[ $? = 0 ] || fail "resumption figures"
grep ' /short.html$' "$LOG" > "$T/resume.log" || true
total=$(wc -l < "$T/resume.log")
reused=$(grep -c ' reused=r ' "$T/resume.log" || true)
echo "nginx: $reused of $total requests on resumed sessions"
[ "$reused" -gt $((total / 2)) ] || fail "nginx saw $reused of $total requests on resumed sessions"

# the same over TLS 1.2
sed -e "s|:$PORT/|:$PORT12/|" "$T/resume.lua" > "$T/resume12.lua"
rc=0
"$IAC" loadtest "$T/resume12.lua" -json "$T/resume12.json" > "$T/resume12.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$T/resume12.out"; fail "TLS 1.2 resumption run: exit $rc"; }
"$PY" - "$T/resume12.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["tls"]
print(f"TLS 1.2 resumption: {d['requests']} requests, {t['handshakes']} handshakes, {t['resumed']} resumed")
assert d["errors"]["total"] == 0 and t["handshakes"] > 20 and t["resumed"] >= t["handshakes"] - 4, t
EOP
[ $? = 0 ] || fail "TLS 1.2 resumption figures"
grep -q ' TLSv1.2 /short.html$' "$LOG" || fail "nginx did not log TLS 1.2"

# ---- a bad option is a config error ------------------------------------
cat > "$T/bad.lua" <<EOF2
target "https://127.0.0.1:$PORT/"
load { vus = 1, duration = "1s", tls = { ca_fil = "x" } }
EOF2
rc=0
"$IAC" loadtest "$T/bad.lua" 2> "$T/bad.err" || rc=$?
[ "$rc" = 1 ] && grep -q "unknown option 'ca_fil' in option 'tls'" "$T/bad.err" || { cat "$T/bad.err"; fail "unknown tls option"; }
echo "ok"
