# tests/haproxy/lib.sh: helpers for the HAProxy blue/green tests (and
# bench/cutover). Real components on 127.0.0.1 only: nginx serving the
# colours, HAProxy 2.6 in master-worker mode, wrk for load, Prometheus.
#
#     . "$(dirname "$0")/lib.sh"
#     apps_start "$BLUE_PORT blue ok" "$GREEN_PORT green err5"
#     haproxy_start blue          # live colour in the rendered config
#     load_start 60 ; ...; load_stop ; load_expect_clean  (tests/lib/load.sh)
#     finish
#
# Everything started is recorded by PID and stopped at exit (trap), never by
# name. $W is the test's private directory, removed at exit.

set -u
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../lib/load.sh"

TOOL=${IAC_DEPLOY_TOOL:-}
if [ -z "$TOOL" ]; then
    for c in "${IAC_BUILD_DIR:-}/iac/deploy/iac-deploy-tool" \
             "$(dirname "${BASH_SOURCE[0]}")/../../build-deploy/iac/deploy/iac-deploy-tool" \
             "$(dirname "${BASH_SOURCE[0]}")/../../build/iac/deploy/iac-deploy-tool"; do
        if [ -x "$c" ]; then TOOL=$c; break; fi
    done
fi
if [ -z "$TOOL" ] || [ ! -x "$TOOL" ]; then
    echo "error: iac-deploy-tool not found; set IAC_BUILD_DIR or IAC_DEPLOY_TOOL" >&2
    exit 1
fi
t_need haproxy nginx wrk curl

W=$(mktemp -d "${TMPDIR:-/tmp}/iac-haproxy.XXXXXX")
FAILS=0
PIDS=()          # processes we started (our children)
DAEMON_PIDS=()   # daemons we started (not our children: polled, not waited)

_haproxy_cleanup() {
    local p
    for p in "${DAEMON_PIDS[@]}" "${PIDS[@]}"; do t_stop_pid "$p"; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap _haproxy_cleanup EXIT
trap 'exit 130' INT TERM

wait_http() {   # URL [SECONDS]: until it answers anything
    local i
    for i in $(seq 1 $((${2:-10} * 20))); do
        if curl -s -o /dev/null --max-time 1 "$1"; then return 0; fi
        sleep 0.05
    done
    echo "error: $1 did not answer" >&2
    return 1
}

# apps_start "PORT COLOUR MODE"...: one nginx serving every colour instance.
# MODE: ok (200 on / and /health), health500 (/health answers 500),
# err5 (5 % of / answer 500, chosen by request id).
apps_start() {
    local conf=$W/nginx.conf spec port colour mode
    mkdir -p "$W/nginx"
    # /slow: 400 KiB at 40 KiB/s keeps a session open for about 10 s (the
    # worker runs as nobody: it must reach the file)
    head -c 409600 /dev/zero > "$W/nginx/slow.bin"
    chmod 711 "$W"; chmod 755 "$W/nginx"; chmod 644 "$W/nginx/slow.bin"
    cat > "$conf" <<EOF
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log;
worker_processes 1;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $W/nginx/cb; proxy_temp_path $W/nginx/px;
    fastcgi_temp_path $W/nginx/fc; uwsgi_temp_path $W/nginx/uw; scgi_temp_path $W/nginx/sc;
    keepalive_requests 1000000;
    default_type text/plain;
    split_clients "\${request_id}" \$fail5 { 5% 1; * 0; }
EOF
    for spec in "$@"; do
        read -r port colour mode <<<"$spec"
        {
            echo "    server {"
            echo "        listen 127.0.0.1:$port;"
            case "$mode" in
            health500) echo "        location = /health { return 500 \"sick\\n\"; }" ;;
            *) echo "        location = /health { return 200 \"ok\\n\"; }" ;;
            esac
            echo "        location = /slow { default_type application/octet-stream; alias $W/nginx/slow.bin; limit_rate 40k; }"
            if [ "$mode" = err5 ]; then
                echo "        location / { if (\$fail5) { return 500 \"error\\n\"; } return 200 \"$colour\\n\"; }"
            else
                echo "        location / { return 200 \"$colour\\n\"; }"
            fi
            echo "    }"
        } >> "$conf"
    done
    echo "}" >> "$conf"
    nginx -e "$W/nginx/error.log" -c "$conf" -g 'daemon off;' &
    PIDS+=($!)
    for spec in "$@"; do
        read -r port colour mode <<<"$spec"
        wait_http "http://127.0.0.1:$port/health" || return 1
    done
}

# haproxy_start LIVE_COLOUR: render the config from $W/desc.json (written by
# haproxy_desc), validate it and start HAProxy; sets HAPROXY_PID, API, MASTER.
haproxy_desc() {   # LIVE "NAME PORT COLOUR"...: writes $W/desc.json
    local live=$1 spec name port colour first=1
    shift
    {
        echo "{\"frontend\": {\"name\": \"web\", \"bind\": \"127.0.0.1:$LB_PORT\"},"
        echo " \"backend\": {\"name\": \"app\"},"
        echo " \"health\": {\"path\": \"/health\", \"interval\": \"${HEALTH_INTERVAL:-500ms}\"},"
        echo " \"stats_socket\": \"$W/api.sock\", \"state_file\": \"$W/server-state\","
        echo " \"pidfile\": \"$W/haproxy.pid\", \"hard_stop_after\": \"10s\","
        echo " \"live\": \"$live\", \"servers\": ["
        for spec in "$@"; do
            read -r name port colour <<<"$spec"
            [ $first = 1 ] || echo ","
            first=0
            echo "  {\"name\": \"$name\", \"address\": \"127.0.0.1\", \"port\": $port, \"colour\": \"$colour\"}"
        done
        echo "]}"
    } > "$W/desc.json"
}

haproxy_start() {
    API=$W/api.sock
    MASTER=$W/master.sock
    "$TOOL" render "$W/desc.json" > "$W/haproxy.cfg" || return 1
    "$TOOL" check "$W/haproxy.cfg" > /dev/null || return 1
    HAPROXY_PID=$("$TOOL" start "$W/haproxy.cfg" "$W/haproxy.pid" "$MASTER") || return 1
    DAEMON_PIDS+=("$HAPROXY_PID")
    local i
    for i in $(seq 1 100); do
        if "$TOOL" cmd "$API" "show info" > /dev/null 2>&1; then break; fi
        sleep 0.05
    done
    wait_http "http://127.0.0.1:$LB_PORT/"
}

# Colour answering through the load balancer, N requests: "blue blue green".
colours() {
    local i
    for i in $(seq 1 "${1:-10}"); do curl -s --max-time 2 "http://127.0.0.1:$LB_PORT/" || echo "ERR"; done | tr '\n' ' '
}

expect_all() {   # COLOUR N WHAT
    local got
    got=$(colours "$2")
    if [ -n "$(echo "$got" | tr ' ' '\n' | grep -v -x -e "$1" -e '')" ]; then
        check_fail "$3: expected only $1, got: $got"
    else
        ok "$3: $2 requests all on $1"
    fi
}

# wrk -c50 through the load balancer (tests/lib/load.sh)
load_url() { echo "http://127.0.0.1:$LB_PORT/"; }
WRK_OUT=$W/wrk.out
LOAD_SECONDS=120
LOAD_WRK_ARGS=(--latency)
LOAD_PIDS=PIDS

# tool_json FILE KEY: a number or string from iac-deploy-tool's JSON output
# (first match)
tool_json() {
    sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1" | head -1
}
