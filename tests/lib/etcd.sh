# tests/lib/etcd.sh: real etcd (Debian etcd-server 3.4) for tests, on free
# loopback ports with data under $TMP, stopped by PID (sourced, not run).
#
#   etcd_single                  one member; sets ETCD_URL
#   etcd_cluster                 three members; sets ETCD_URLS (comma list),
#                                ETCD_URL1..3 and ETCD_PID1..3
#   etcd_kill N / etcd_start N   kill -9 / restart member N of the cluster
#   etcd_leader                  the member number (1..3) that leads now
#   etcd_stop_all                stop every member (the caller's EXIT trap)
# Short heartbeat/election timeouts: a leader in well under a second, and
# etcd's minimum lease TTL (1.5 election timeouts) drops to about 1 s, so
# lease expiry is testable in seconds.
: "${TMP:?set TMP before sourcing etcd.sh}"
ETCD_BIN=$(command -v etcd || true)
[ -n "$ETCD_BIN" ] || { echo "FAIL: etcd is not installed (apt-get install etcd-server)" >&2; exit 1; }
ETCD_PIDS=()
declare -A ETCD_CMD

etcd_free_port() {
	"$T_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

etcd_wait() {
	local url=$1 i
	for i in $(seq 1 150); do
		curl -s -m 1 -X POST -d '{"key":"cHJvYmU="}' "$url/v3/kv/range" 2>/dev/null | grep -q header && return 0
		sleep 0.1
	done
	echo "FAIL: etcd at $url did not come up" >&2
	tail -5 "$TMP"/etcd*.log >&2
	exit 1
}

etcd_single() {
	local c p
	c=$(etcd_free_port); p=$(etcd_free_port)
	ETCD_URL="http://127.0.0.1:$c"
	"$ETCD_BIN" --name s1 --data-dir "$TMP/etcd-single" \
		--listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
		--listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
		--initial-cluster "s1=http://127.0.0.1:$p" \
		--heartbeat-interval 50 --election-timeout 300 >"$TMP/etcd-single.log" 2>&1 &
	ETCD_PIDS+=($!)
	etcd_wait "$ETCD_URL"
}

etcd_start() {
	local n=$1
	bash -c "${ETCD_CMD[$n]}" >>"$TMP/etcd$n.log" 2>&1 &
	eval "ETCD_PID$n=$!"
	ETCD_PIDS+=($!)
}

etcd_cluster() {
	local i cl="" c p
	declare -ga ETCD_CP ETCD_PP
	for i in 1 2 3; do
		c=$(etcd_free_port); p=$(etcd_free_port)
		ETCD_CP[$i]=$c; ETCD_PP[$i]=$p
		cl="$cl${cl:+,}m$i=http://127.0.0.1:$p"
	done
	ETCD_URLS=""
	for i in 1 2 3; do
		local url="http://127.0.0.1:${ETCD_CP[$i]}"
		eval "ETCD_URL$i=$url"
		ETCD_URLS="$ETCD_URLS${ETCD_URLS:+,}$url"
		ETCD_CMD[$i]="exec '$ETCD_BIN' --name m$i --data-dir '$TMP/etcd-m$i' \
--listen-client-urls $url --advertise-client-urls $url \
--listen-peer-urls http://127.0.0.1:${ETCD_PP[$i]} --initial-advertise-peer-urls http://127.0.0.1:${ETCD_PP[$i]} \
--initial-cluster $cl --initial-cluster-state new --initial-cluster-token iac-test-$$ \
--heartbeat-interval 50 --election-timeout 300"
		etcd_start "$i"
	done
	for i in 1 2 3; do eval "etcd_wait \$ETCD_URL$i"; done
}

etcd_kill() {
	local pid
	eval "pid=\$ETCD_PID$1"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

etcd_leader() {
	local i url
	for i in 1 2 3; do
		eval "url=\$ETCD_URL$i"
		if curl -s -m 1 -X POST -d '{}' "$url/v3/maintenance/status" 2>/dev/null |
			"$T_PY" -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d.get("leader")==d["header"].get("member_id") else 1)' 2>/dev/null; then
			echo "$i"; return 0
		fi
	done
	echo 0
}

etcd_stop_all() {
	local p
	for p in "${ETCD_PIDS[@]}"; do t_stop_pid "$p"; wait "$p" 2>/dev/null || true; done
}
