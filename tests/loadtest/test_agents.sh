# More than one machine of load: -agents ships the scenario over SSH to
# test-bed hosts, runs this iac binary there and merges their figures: the
# merged request count is exactly what nginx logged from all agents, the
# custom counter adds up, each agent is named in the notes; an agent that
# cannot run (a host killed) is reported and the result marked not valid.
# Prints 1 agent vs 3 agents (req/s, p99). Skips without root or netns.
set -euo pipefail
. "$(dirname "$0")/../lib/testbed.sh"
: "${IAC:?IAC must point at the iac binary}"
PY=$T_PY
T=$(mktemp -d /tmp/iac-lt-agents-XXXXXX)
BED=$T/bed
NGINX_PID=
cleanup() {
	[ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null
	t_bed_down "$BED" || true
	rm -rf "$T"
}
trap cleanup EXIT
json() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

t_bed_up "$BED" 3 "la$$"
. "$BED/env"
CTL=$TB_SUBNET.1
IAC=$(readlink -f "$IAC")

# nginx in the controller namespace, on the bridge the agents reach
mkdir -p "$T/www" "$T/tmp"
head -c 512 /dev/zero | tr '\0' x > "$T/www/index.html"
cat > "$T/nginx.conf" <<EOC
worker_processes 1;
master_process off;
daemon off;
pid $T/nginx.pid;
error_log $T/error.log;
events { worker_connections 4096; }
http {
  access_log $T/access.log;
  keepalive_requests 1000000;
  client_body_temp_path $T/tmp/b; proxy_temp_path $T/tmp/p; fastcgi_temp_path $T/tmp/f;
  uwsgi_temp_path $T/tmp/u; scgi_temp_path $T/tmp/s;
  server { listen $CTL:18199; root $T/www; }
}
EOC
bash "$TESTBED" exec "$BED" nginx -c "$T/nginx.conf" -p "$T" &
NGINX_PID=$!
sleep 0.5

cat > "$T/s.lua" <<EOF2
target "http://$CTL:18199"
local hits = counter("hits")
scenario "home" { flow = function(u)
  u:get("/index.html", { tags = { endpoint = "home" } })
  hits:add(1)
end }
load { vus = 2, duration = "2s" }
thresholds { ["http_req_duration{endpoint:home}"] = "p(99) < 2s" }
observe { ssh_key = "$BED/id_ed25519", known_hosts = "$BED/known_hosts" }
EOF2
A1="root@$(addr 1)"
A3="root@$(addr 1),root@$(addr 2),root@$(addr 3)"

run() {   # run NAME AGENTS: the merged run; its JSON in $T/NAME.json
	: > "$T/access.log"
	rc=0
	bash "$TESTBED" exec "$BED" "$IAC" loadtest "$T/s.lua" -agents "$2" -json "$T/$1.json" > "$T/$1.out" 2>&1 || rc=$?
	cat "$T/$1.out"
}
run one "$A1"
[ "$rc" = 0 ] || fail "1 agent: exit $rc"
run three "$A3"
[ "$rc" = 0 ] || fail "3 agents: exit $rc"
logged=$(wc -l < "$T/access.log")
merged=$(json "$T/three.json" "d['requests']")
[ "$logged" = "$merged" ] || fail "nginx logged $logged requests, the merged report says $merged"
[ "$(json "$T/three.json" "int(d['metrics']['hits']['count']) == d['requests']")" = True ] || fail "the custom counter does not add up"
[ "$(json "$T/three.json" "d['endpoints']['GET /index.html']['requests'] == d['requests']")" = True ] || fail "endpoint figures"
[ "$(json "$T/three.json" "sum('agent ' in n for n in d['notes'])")" = 3 ] || fail "each agent should be in the notes"
# 3 healthy agents: valid, unless an agent judged its own run not valid (its
# threads waited for a CPU: this machine is shared), which must then be said
[ "$(json "$T/three.json" "d['valid'] or all('was not valid' in r for r in d['invalid_reasons'])")" = True ] ||
	fail "3 healthy agents: the result should be valid"
echo "figures: 1 agent $(json "$T/one.json" "round(d['rps'])") req/s p99 $(json "$T/one.json" "d['latency_ms']['p99']") ms;" \
	"3 agents $(json "$T/three.json" "round(d['rps'])") req/s p99 $(json "$T/three.json" "d['latency_ms']['p99']") ms (same machine: CPU shared)"

# agents picked from the topology as main.lua declares them; the SSH key and
# known_hosts from its ssh provider (the scenario's observe gives none)
mkdir -p "$T/topo"
cat > "$T/topo/main.lua" <<EOF2
provider "ssh" { user = "root", private_key = "$BED/id_ed25519", known_hosts = "$BED/known_hosts" }
host "lg1" { address = "$(addr 1)", labels = { role = "loadgen" } }
host "lg2" { address = "$(addr 2)", labels = { role = "loadgen" } }
host "web1" { address = "$(addr 3)", labels = { role = "web" } }
EOF2
grep -v '^observe' "$T/s.lua" > "$T/s2.lua"
(cd "$T/topo" && bash "$TESTBED" exec "$BED" "$IAC" loadtest "$T/s2.lua" -agents 'hosts{ role = "loadgen" }' \
	-json "$T/sel.json") > "$T/sel.out" 2>&1 || { cat "$T/sel.out"; fail "-agents hosts{role=\"loadgen\"}"; }
[ "$(json "$T/sel.json" "sorted(n.split(\"'\")[1] for n in d['notes'] if n.startswith('agent ') and \"':\" in n)")" = \
	"['root@$(addr 1)', 'root@$(addr 2)']" ] || fail "selected agents: $(json "$T/sel.json" "d['notes']")"
(cd "$T/topo" && "$IAC" loadtest "$T/s2.lua" -agents 'hosts{role="db"}') > "$T/none.out" 2>&1 && fail "no matching host accepted"
grep -q "flag '-agents hosts{role=\"db\"}': no host in main.lua" "$T/none.out" || fail "no match: $(cat "$T/none.out")"
(cd "$T/topo" && "$IAC" loadtest "$T/s2.lua" -agents 'hosts{role=loadgen}') > "$T/bad.out" 2>&1 && fail "bad selector accepted"
grep -q "expected hosts{ KEY = \"VALUE\", ... }" "$T/bad.out" || fail "bad selector: $(cat "$T/bad.out")"
echo "ok: -agents hosts{role=\"loadgen\"} picks lg1 and lg2 from main.lua"

# an agent that cannot run: reported, the result not valid
bash "$TESTBED" kill "$BED" h3 >/dev/null 2>&1 || true
run dead "$A3"
[ "$(json "$T/dead.json" "d['valid']")" = False ] || fail "a dead agent must make the result not valid"
json "$T/dead.json" "d['invalid_reasons']" | grep -q "agent 'root@$(addr 3)' failed" || fail "the dead agent is not named"
[ "$(json "$T/dead.json" "d['requests'] > 0")" = True ] || fail "the live agents' figures should still be merged"
echo "ok: agents"
