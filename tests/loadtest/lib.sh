# lib.sh: helpers for the loadtest script tests. Each test starts its own
# nginx (and HAProxy) on free loopback ports with configs in a temp dir and
# stops them by PID from an EXIT trap. Sourced, not run.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

: "${IAC:?IAC must point at the iac binary}"
PY=$T_PY
T=$(mktemp -d /tmp/iac-lt-XXXXXX)
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -CONT "$p" 2>/dev/null || true
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT

wait_port() { t_wait_port "$1"; }   # wait_port PORT: until something accepts on 127.0.0.1:PORT

# start_nginx PORT [EXTRA_SERVER_CONFIG]: one process (no master, so
# SIGSTOP pauses the whole server), access log in $T/nginx/access.log, a
# 1 KiB file at /1k.html, /product/1..20, /cart, and /slow/ that answers
# after 300 ms (echo module).
start_nginx() {
	local port=$1 extra=${2:-}
	local d=$T/nginx
	mkdir -p "$d/www/product" "$d/tmp"
	head -c 1024 /dev/zero | tr '\0' 'x' > "$d/www/1k.html"
	for i in $(seq 1 20); do echo "product $i" > "$d/www/product/$i"; done
	echo '{"ok":true}' > "$d/www/cart"
	echo 'home' > "$d/www/index.html"
	local echo_mod=/usr/lib/nginx/modules/ngx_http_echo_module.so
	[ -e "$echo_mod" ] || fail "nginx's echo module is missing (apt-get install nginx-light)"
	echo_mod="load_module $echo_mod;"
	cat > "$d/nginx.conf" <<EOC
$echo_mod
worker_processes 1;
master_process off;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
worker_rlimit_nofile 40000;
events { worker_connections 30000; }
http {
  access_log $d/access.log;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    root $d/www;
    location /slow/ { echo_sleep 0.3; echo "slow"; }
    location = /post { client_body_buffer_size 64k; echo_read_request_body; echo "got \$request_body"; }
    $extra
  }
}
EOC
	nginx -c "$d/nginx.conf" -p "$d" &
	NGINX_PID=$!
	PIDS+=("$NGINX_PID")
	wait_port "$port"
}

wait_logged() {   # wait_logged N: until nginx has logged N requests (20 s at most)
	local i
	for i in $(seq 1 400); do
		[ "$(nginx_requests)" -ge "$1" ] && return 0
		sleep 0.05
	done
	fail "nginx logged fewer than $1 requests in 20 s"
}

nginx_requests() {   # lines in the access log
	wc -l < "$T/nginx/access.log" | tr -d ' '
}

# jq-free JSON access: json FILE EXPR (Python expression over d)
json() {
	"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}
