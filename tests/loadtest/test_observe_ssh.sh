# Host CPU and memory over SSH: a simulated host (tests/testbed) is observed
# over SSH through iac/host; the figures land on the run's
# time axis beside "local". The test-bed hosts share this machine's kernel,
# so their /proc/stat is the machine's: the test checks the SSH path (figures
# arrive, are plausible and agree with the local ones), not isolation.
# Skips without root or network namespaces.
set -euo pipefail
. "$(dirname "$0")/../lib/testbed.sh"
: "${IAC:?IAC must point at the iac binary}"
PY=$T_PY
T=$(mktemp -d /tmp/iac-lt-ssh-XXXXXX)
BED=$T/bed
NGINX_PID=
cleanup() {
	[ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null
	t_bed_down "$BED" || true
	rm -rf "$T"
}
trap cleanup EXIT

t_bed_up "$BED" 1 "lt$$"
ADDR=$(addr 1)
if ! bash "$TESTBED" exec "$BED" true 2>/dev/null; then
	fail "cannot run in the controller namespace"
fi

# nginx in the controller namespace, where iac runs
mkdir -p "$T/www" "$T/tmp"
echo hello > "$T/www/index.html"
cat > "$T/nginx.conf" <<EOC
worker_processes 1;
master_process off;
daemon off;
pid $T/nginx.pid;
error_log $T/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $T/tmp/b; proxy_temp_path $T/tmp/p; fastcgi_temp_path $T/tmp/f;
  uwsgi_temp_path $T/tmp/u; scgi_temp_path $T/tmp/s;
  server { listen 127.0.0.1:18099; root $T/www; }
}
EOC
bash "$TESTBED" exec "$BED" nginx -c "$T/nginx.conf" -p "$T" &
NGINX_PID=$!
sleep 0.5

cat > "$T/s.lua" <<EOF2
target "http://127.0.0.1:18099/"
load { vus = 2, duration = "5s" }
observe { hosts = { "root@$ADDR", "local" }, ssh_key = "$BED/id_ed25519", known_hosts = "$BED/known_hosts" }
EOF2
bash "$TESTBED" exec "$BED" "$IAC" loadtest "$T/s.lua" -json "$T/s.json" > "$T/s.out" 2> "$T/s.err" ||
	fail "run exited $?: $(cat "$T/s.err")"
cat "$T/s.out"
"$PY" - "$T/s.json" "root@$ADDR" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
host = sys.argv[2]
ts = d["timeseries"]
cpu = [p["hosts"][host]["cpu_pct"] for p in ts]
mem = [p["hosts"][host]["mem_pct"] for p in ts]
loc = [p["hosts"]["local"]["mem_pct"] for p in ts]
print("host", host, "CPU per second", cpu, "memory", mem)
got = [i for i in range(min(5, len(ts))) if cpu[i] is not None and mem[i] is not None]
assert len(got) >= 3, cpu           # a sample may time out on a busy machine, not most
for i in got:
    assert 0 <= cpu[i] <= 100 and 0 < mem[i] < 100, (cpu[i], mem[i])
    assert loc[i] is None or abs(mem[i] - loc[i]) < 5, (mem[i], loc[i])   # same kernel
assert d["server"]["hosts"] == [host, "local"]
EOP
[ $? = 0 ] || fail "host figures over SSH are missing or wrong"
grep -q "host root@$ADDR: max CPU" "$T/s.out" || fail "summary lacks the host line"
echo ok
