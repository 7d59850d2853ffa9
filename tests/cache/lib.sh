# tests/cache/lib.sh: helpers for the cache tier tests. Real servers from
# Debian on 127.0.0.1 (redis-server, memcached, nutcracker), each started by
# this test, recorded by PID and stopped at exit (trap), never by name.
#
#     . "$(dirname "$0")/lib.sh"
#     port=$(free_port); redis_start "$port"; nutcracker_start CONF
#     ...; finish
#
# $W is the test's private directory, removed at exit (KEEP_WORK=1 keeps it).
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

IAC=${IAC:-$(dirname "${BASH_SOURCE[0]}")/../../build/iac/iac}
W=$(mktemp -d "${TMPDIR:-/tmp}/iac-cache.XXXXXX")
PIDS=()

_cache_cleanup() {
    local p
    for p in "${PIDS[@]}"; do t_stop_pid "$p"; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap _cache_cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on 127.0.0.1, chosen by the kernel.
free_port() {
    "$T_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# redis_start PORT: a throw-away Redis on 127.0.0.1:PORT (no persistence).
redis_start() {
    mkdir -p "$W/redis-$1"
    redis-server --port "$1" --bind 127.0.0.1 --daemonize no --save '' --appendonly no \
        --dir "$W/redis-$1" --logfile "$W/redis-$1/log" &
    PIDS+=($!)
    t_wait_port "$1"
}

# nutcracker_start CONF: twemproxy with CONF (checked with -t first); sets
# NC_PID. Its stats port is a free one on 127.0.0.1.
nutcracker_start() {
    nutcracker -t -c "$1" >/dev/null 2>&1 || { nutcracker -t -c "$1"; check_fail "nutcracker -t refused $1"; return 1; }
    nutcracker -c "$1" -s "$(free_port)" -a 127.0.0.1 -o "$W/nutcracker.log" &
    NC_PID=$!
    PIDS+=($NC_PID)
}

# resp_set_keys PORT FILE: SET every key of FILE (one a line) to "1" through
# the server or proxy at 127.0.0.1:PORT, pipelined; fails unless every reply
# is +OK.
resp_set_keys() {
    "$T_PY" - "$1" "$2" <<'PY'
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
keys = [l.rstrip("\n") for l in open(path)]
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
for i in range(0, len(keys), 500):
    batch = keys[i:i + 500]
    s.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(k), k.encode()) for k in batch))
    for _ in batch:
        line = f.readline()
        if line != b"+OK\r\n":
            sys.exit("unexpected reply %r" % line)
PY
}

# redis_keys PORT: every key on that Redis, one a line.
redis_keys() {
    redis-cli -p "$1" --scan
}
