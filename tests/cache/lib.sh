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

# memcached_start ADDR PORT: a throw-away memcached on ADDR:PORT (UDP off).
memcached_start() {
    memcached -u root -l "$1" -p "$2" -U 0 -m 64 &
    PIDS+=($!)
    local i
    for i in $(seq 1 100); do
        (exec 3<>/dev/tcp/"$1"/"$2") 2>/dev/null && return 0
        sleep 0.05
    done
    check_fail "memcached on $1:$2 did not start"
    return 1
}

# mc_set_keys ADDR PORT FILE: set every key of FILE to "1" through the
# memcached (or proxy) at ADDR:PORT, pipelined; fails unless each is STORED.
mc_set_keys() {
    "$T_PY" - "$1" "$2" "$3" <<'PY'
import socket, sys
addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keys = [l.rstrip("\n") for l in open(path)]
s = socket.create_connection((addr, port))
f = s.makefile("rb")
for i in range(0, len(keys), 500):
    batch = keys[i:i + 500]
    s.sendall(b"".join(b"set %s 0 0 1\r\n1\r\n" % k.encode() for k in batch))
    for _ in batch:
        line = f.readline()
        if line != b"STORED\r\n":
            sys.exit("unexpected reply %r" % line)
PY
}

# mc_keys ADDR PORT: every key that memcached holds (lru_crawler metadump).
mc_keys() {
    "$T_PY" - "$1" "$2" <<'PY'
import socket, sys, urllib.parse
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
f = s.makefile("rb")
s.sendall(b"lru_crawler metadump all\r\n")
for line in f:
    line = line.decode().rstrip("\r\n")
    if line == "END":
        break
    if line.startswith("key="):
        print(urllib.parse.unquote(line.split(" ", 1)[0][4:]))
PY
}
