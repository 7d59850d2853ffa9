#!/bin/bash
# cache_cluster mistakes are caught by `iac validate`, before any host is
# touched, with a message that names the cluster and the setting.
. "$(dirname "$0")/lib.sh"

check() {   # EXPECTED_MESSAGE LUA_BODY
	cat >"$W/main.lua" <<EOF
host "c1" { address = "10.9.0.2", labels = { role = "cache" } }
host "a1" { address = "10.9.0.3", labels = { role = "app" } }
cache_cluster "sessions" { hosts = hosts { role = "cache" }, $2 }
EOF
	if (cd "$W" && "$IAC" -no-color validate) >"$W/out" 2>&1; then
		check_fail "accepted: $2"
	elif grep -qF -- "$1" "$W/out"; then
		ok "refused: $2"
	else
		check_fail "for '$2' expected '$1', got: $(cat "$W/out")"
	fi
}
check "engine must be \"redis\" or \"memcached\", not 'mongo'" 'engine = "mongo"'
check "memory 'lots' must look like \"256mb\"" 'engine = "memcached", memory = "lots"'
check "per_host must be a whole number >= 1" 'per_host = 0'
check "ring.hash must be \"ketama\", not 'maglev'" 'ring = { hash = "maglev" }'
check "vnodes 161 must be a multiple of 4" 'ring = { vnodes = 161 }'
check "unknown key hash 'crc99'" 'ring = { key_hash = "crc99" }'
check "hash_tag '{' must be two characters" 'ring = { hash_tag = "{" }'
check "publish.file needs a 'path'" 'publish = { file = { hosts = hosts { role = "app" } } }'
check "publish.etcd needs 'endpoints' and 'key'" 'publish = { etcd = { key = "/k" } }'
check "a twemproxy ring has 160 points per node" 'ring = { vnodes = 80 }, proxy = { hosts = hosts { role = "app" } }'
check "warm.max_rate 'fast' must look like \"20000/s\"" 'warm = { on_join = true, max_rate = "fast" }'
check "replicas must be 0 or 1" 'replicas = 2'
check "replicas = 1 needs engine = \"redis\"" 'engine = "memcached", replicas = 1'
# misspelt settings at every level, at the user's line, with a suggestion
check "main.lua:3: cache_cluster 'sessions': unknown setting 'memroy'; did you mean 'memory'?" 'memroy = "256mb"'
check "main.lua:3: cache_cluster 'sessions': ring: unknown setting 'vnode'; did you mean 'vnodes'?" 'ring = { vnode = 100 }'
check "warm: unknown setting 'onjoin'; did you mean 'on_join'?" 'warm = { onjoin = true }'
check "publish: unknown setting 'files'; did you mean 'file'?" 'publish = { files = { path = "/x" } }'
check "publish.file: unknown setting 'paht'; did you mean 'path'?" 'publish = { file = { hosts = hosts { role = "app" }, paht = "/x" } }'
check "proxy: unknown setting 'prot'; did you mean 'port'?" 'proxy = { hosts = hosts { role = "app" }, prot = 1 }'
check "classes.session: unknown setting 'tll'; did you mean 'ttl'?" 'classes = { session = { tll = "30m" } }'
# memory and policy never reach redis.conf unchecked
check "memory 'lots' must look like \"256mb\"" 'memory = "lots"'
check "must look like \"256mb\"" 'memory = "256mb\nrequirepass x"'
check "memory 256 needs a unit: write \"256mb\" (kb, mb or gb)" 'memory = 256'
check "memory 256 needs a unit" 'engine = "memcached", memory = "256"'
check "memcached takes whole megabytes" 'engine = "memcached", memory = "512kb"'
check "policy 'allkeys-lfuu' is not one of noeviction, allkeys-lru" 'policy = "allkeys-lfuu"'
check "; did you mean 'allkeys-lfu'?" 'policy = "allkeys-lfuu"'
check "not 'redsi'; did you mean 'redis'?" 'engine = "redsi"'
check "policy 'allkeys-lfu' is Redis only: memcached evicts" 'engine = "memcached", policy = "allkeys-lfu"'
# shapes: hosts are hosts, tables are tables
check "main.lua:3: cache_cluster 'sessions': publish.file.hosts must be hosts" 'publish = { file = { hosts = { "a1" }, path = "/x" } }'
check "proxy must be a table { ... }" 'proxy = true'
check "proxy needs 'hosts' (where twemproxy runs)" 'proxy = { port = 22121 }'
# numbers are numbers
check "main.lua:3: cache_cluster 'sessions': base_port must be a port number (1-65535), not 'x'" 'base_port = "x"'
check "ring.vnodes 0 must be a multiple of 4 between 4 and 4096" 'ring = { vnodes = 0 }'
check "ring.vnodes -5 must be a multiple of 4" 'ring = { vnodes = -5 }'
check "proxy.port must be a port number (1-65535), not 'x'" 'proxy = { hosts = hosts { role = "app" }, port = "x" }'
check "classes.session: ttl '30 minutes' must be a duration like \"30m\"" 'classes = { session = { ttl = "30 minutes" } }'
check "classes.session: jitter '5' must be a fraction from 0 to 1" 'classes = { session = { ttl = "30m", jitter = 5 } }'

# and a good one validates, with every resource it makes
cat >"$W/main.lua" <<EOF
host "c1" { address = "10.9.0.2", labels = { role = "cache" } }
host "c2" { address = "10.9.0.3", labels = { role = "cache" } }
host "a1" { address = "10.9.0.4", labels = { role = "app" } }
cache_cluster "sessions" {
  engine = "redis", hosts = hosts { role = "cache" }, per_host = 2, memory = "256mb", policy = "allkeys-lfu",
  ring = { hash = "ketama", vnodes = 160 }, proxy = { hosts = hosts { role = "app" }, port = 22121 },
  publish = { file = { hosts = hosts { role = "app" }, path = "/etc/app/cache-ring.json" } },
  warm = { on_join = true, max_rate = "20000/s", max_time = "60s" }, exporter = { port = 9121 },
  classes = { session = { ttl = "30m", jitter = 0.1 } },
}
EOF
# 4 nodes x (conf, service, exporter) + cluster + ring + proxy conf + proxy service = 16
(cd "$W" && "$IAC" -no-color validate) >"$W/out" 2>&1 && grep -qF "valid (16 resources)" "$W/out" &&
	ok "a full cache_cluster validates (16 resources)" || check_fail "good config: $(cat "$W/out")"

# the command line too: a bad -vnodes and a misspelt subcommand are named
cmd_check() {   # EXPECTED_MESSAGE ARGS...
	local want=$1; shift
	if "$IAC" -no-color "$@" >"$W/out" 2>&1; then
		check_fail "accepted: iac $*"
	elif grep -qF -- "$want" "$W/out"; then
		ok "refused: iac $*"
	else
		check_fail "for 'iac $*' expected '$want', got: $(cat "$W/out")"
	fi
}
cmd_check "-vnodes -5 must be a multiple of 4 between 4 and 4096" cache ring -node a=a -node b=b -vnodes -5
cmd_check "-vnodes 0 must be a multiple of 4" cache ring -node a=a -vnodes 0
cmd_check "unknown subcommand 'cache rign'; did you mean 'ring'?" cache rign
cmd_check "unknown subcommand 'cache bogus'" cache bogus
cmd_check "unknown subcommand 'cache folow'; did you mean 'follow'?" cache folow
cmd_check "usage: iac cache follow CLUSTER" cache follow
check "l1 must be a table" 'l1 = "lb"'
check "unknown setting 'l2'" 'l2 = {}'

# plans/shop validates as shipped (tests/cache/test_shop.sh applies it on the test bed)
SHOP="$(cd "$(dirname "$0")/../../plans/shop" && pwd)"
if "$IAC" -no-color -chdir="$SHOP" validate -var lb=10.9.0.2 -var apps=10.9.0.3,10.9.0.4 -var caches=10.9.0.5 \
	>"$W/shop.out" 2>&1; then
	ok "plans/shop validates"
else
	check_fail "plans/shop does not validate: $(cat "$W/shop.out")"
fi
finish
