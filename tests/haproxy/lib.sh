# tests/haproxy/lib.sh: helpers for the HAProxy blue/green tests (and
# bench/cutover). Real components on 127.0.0.1 only: nginx serving the
# colours, HAProxy 2.6 in master-worker mode, wrk for load, Prometheus.
#
#     . "$(dirname "$0")/lib.sh"
#     apps_start "$BLUE_PORT blue ok" "$GREEN_PORT green err5"
#     haproxy_start blue          # live colour in the rendered config
#     load_start 60 ; ...; load_stop ; load_expect_clean
#     finish
#
# Everything started is recorded by PID and stopped at exit (trap), never by
# name. $W is the test's private directory, removed at exit.

set -u
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

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
USED_PORTS=" "

_cleanup() {
    local p
    for p in "${DAEMON_PIDS[@]}" "${PIDS[@]}"; do t_stop_pid "$p"; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

fail() { check_fail "$@"; }   # a failed check; the test goes on

# A TCP port no socket uses (and that this test has not handed out), below
# the kernel's ephemeral range so that no outgoing connection (wrk opens
# thousands) can take it between this check and the bind.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
    local p span=$((EPHEMERAL_LOW - 10000))
    while :; do
        p=$((10000 + (RANDOM * 32768 + RANDOM) % span))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if [ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ]; then
            USED_PORTS="$USED_PORTS$p "
            echo "$p"
            return
        fi
    done
}

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
        fail "$3: expected only $1, got: $got"
    else
        ok "$3: $2 requests all on $1"
    fi
}

# wrk -c50 through the load balancer in the background until load_stop.
load_start() {   # MAX_SECONDS
    wrk -t2 -c50 -d"${1:-120}"s --latency "http://127.0.0.1:$LB_PORT/" > "$W/wrk.out" 2>&1 &
    WRK_PID=$!
    PIDS+=("$WRK_PID")
    sleep 1
}

load_stop() {   # wrk prints its summary on SIGINT
    kill -INT "$WRK_PID" 2>/dev/null || true
    wait "$WRK_PID" 2>/dev/null || true
}

# Sets WRK_REQUESTS, WRK_SOCKET_ERRORS, WRK_NON2XX from $W/wrk.out.
load_figures() {
    t_wrk_figures "$W/wrk.out"
}

load_expect_clean() {   # WHAT
    load_figures
    if [ "$WRK_REQUESTS" -lt 1000 ]; then
        fail "$1: wrk made only $WRK_REQUESTS requests"; cat "$W/wrk.out" >&2
    elif [ "$WRK_SOCKET_ERRORS" -ne 0 ] || [ "$WRK_NON2XX" -ne 0 ]; then
        fail "$1: $WRK_SOCKET_ERRORS socket errors, $WRK_NON2XX non-2xx of $WRK_REQUESTS requests"
        cat "$W/wrk.out" >&2
    else
        ok "$1: $WRK_REQUESTS requests under wrk -c50, 0 socket errors, 0 non-2xx"
    fi
}

# json_get FILE KEY: a number or string from the tool's JSON output (first match).
json_get() {
    sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1" | head -1
}
