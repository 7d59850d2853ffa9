-- cache_cluster: Redis or Memcached nodes on hosts, the ketama ring iac
-- computes for them, published to app hosts, and optional twemproxy proxies
-- (docs/cache.md).
--
--   local cache = cache_cluster "sessions" {
--     engine = "redis",              -- or "memcached"
--     hosts = hosts { role = "cache" }, per_host = 2, memory = "256mb", policy = "allkeys-lfu",
--     base_port = 6379,              -- node k of a host listens on base_port + k - 1 (memcached: 11211)
--     ring = { hash = "ketama", vnodes = 160, key_hash = "md5", hash_tag = "{}" },
--     proxy = { hosts = hosts { role = "app" }, port = 22121, stats_port = 22222 },
--     publish = { file = { hosts = hosts { role = "app" }, path = "/etc/app/cache-ring.json" },
--                 etcd = { endpoints = "http://10.0.0.9:2379", key = "/cache/sessions/ring" } },
--     classes = { session = { ttl = "30m", jitter = 0.1 } },
--     warm = { on_join = true, max_rate = "20000/s", max_time = "60s" },
--     exporter = { port = 9121 },    -- redis: prometheus-redis-exporter per node
--     replicas = 1,                  -- redis: a replica per node (next host, port + 1000)
--     sentinel = { port = 26379, down_after_ms = 1000 },   -- and 3 Sentinels over the hosts
--   }
--
-- Each node is a configuration file (ssh.file, so an edit by hand shows as a
-- diff) and a process (ssh.service with its pidfile, so a killed node is
-- planned back), restarted when its file changes. Nodes are named
-- CLUSTER-HOST-K (sessions-c1-1), resources CLUSTER_HOST_K(_conf). The
-- cluster itself (cache.cluster, for iac status cache / iac cache invalidate)
-- changes once every node runs, and copies the keys that move when warm.on_join
-- is set; then the ring (cache.ring) and the proxy configurations (cache.proxy,
-- checked with nutcracker -t) are written. Returns { name, engine, nodes = {{name, host,
-- address, port}}, services, rings, proxies }.

-- a memory size: a whole number and a unit, kb, mb or gb (any case), the
-- same for both engines; a bare number is refused (Redis reads it as bytes,
-- memcached as megabytes). Returns the size in kilobytes.
local function kilobytes(name, text)
  local n, unit = nil, nil
  if type(text) == "string" then n, unit = text:lower():match("^(%d+)(%a+)$") end
  local mult = ({ kb = 1, mb = 1024, gb = 1024 * 1024 })[unit or ""]
  if type(text) == "number" or (type(text) == "string" and text:match("^%d+$")) then
    error("cache_cluster '" .. name .. "': memory " .. tostring(text) .. " needs a unit: write \"" .. tostring(text) ..
          "mb\" (kb, mb or gb)", 3)
  end
  if not n or not mult then
    -- a newline shown as \10: the message stays one line
    local shown = tostring(text):gsub("%c", function(c) return "\\" .. c:byte() end)
    error("cache_cluster '" .. name .. "': memory '" .. shown .. "' must look like \"256mb\" or \"2gb\" " ..
          "(a whole number and kb, mb or gb)", 3)
  end
  return tonumber(n) * mult
end

-- memcached's -m is in megabytes
local function megabytes(name, text)
  local kb = kilobytes(name, text)
  if kb % 1024 ~= 0 or kb == 0 then
    error("cache_cluster '" .. name .. "': memory '" .. tostring(text) .. "': memcached takes whole megabytes " ..
          "(\"64mb\", \"1gb\")", 3)
  end
  return kb // 1024
end

local redis_policies = { "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu",
                         "volatile-random", "volatile-ttl" }

-- "; did you mean 'x'?" for a misspelt value, or ""
local function did_you_mean(helpers, v, list)
  local pick = type(v) == "string" and helpers and helpers.suggest and helpers.suggest(v, list)
  return pick and ("; did you mean '" .. pick .. "'?") or ""
end

-- a port setting: nil (the default) or a whole number 1-65535
local function port_of(name, what, v, default)
  if v == nil then return default end
  if type(v) ~= "number" or v % 1 ~= 0 or v < 1 or v > 65535 then
    error("cache_cluster '" .. name .. "': " .. what .. " must be a port number (1-65535), not '" .. tostring(v) .. "'", 3)
  end
  return v
end

-- every settings table and the keys it takes (docs/cache.md); a misspelt
-- key anywhere is refused with a suggestion, at the user's line
local function check_settings(name, cfg, check)
  local what = "cache_cluster '" .. name .. "'"
  for _, k in ipairs { "ring", "proxy", "publish", "warm", "sentinel", "l1" } do
    if cfg[k] ~= nil and type(cfg[k]) ~= "table" then error(what .. ": " .. k .. " must be a table { ... }", 3) end
  end
  for _, k in ipairs { "file", "etcd" } do
    if cfg.publish and cfg.publish[k] ~= nil and type(cfg.publish[k]) ~= "table" then
      error(what .. ": publish." .. k .. " must be a table { ... }", 3)
    end
  end
  check = check or function() end   -- required without the prelude's helpers
  check(cfg, what, { "engine", "hosts", "per_host", "memory", "policy", "base_port", "ring", "proxy", "publish",
                     "classes", "warm", "exporter", "replicas", "sentinel", "l1" })
  check(cfg.ring, what .. ": ring", { "hash", "vnodes", "key_hash", "hash_tag" })
  check(cfg.proxy, what .. ": proxy", { "hosts", "port", "stats_port" })
  check(cfg.publish, what .. ": publish", { "file", "etcd" })
  if type(cfg.publish) == "table" then
    check(cfg.publish.file, what .. ": publish.file", { "hosts", "path" })
    check(cfg.publish.etcd, what .. ": publish.etcd", { "endpoints", "key" })
  end
  check(cfg.warm, what .. ": warm", { "on_join", "max_rate", "max_time" })
  check(cfg.exporter, what .. ": exporter", { "port" })
  check(cfg.sentinel, what .. ": sentinel", { "port", "down_after_ms" })
  if type(cfg.classes) == "table" then
    for cname, c in pairs(cfg.classes) do
      local cw = what .. ": classes." .. tostring(cname)
      if type(c) ~= "table" then
        error(cw .. " must be a table { ttl = \"30m\", jitter = 0.1, namespace_by = ... }", 3)
      end
      check(c, cw, { "ttl", "jitter", "namespace_by" })
      if c.ttl ~= nil and not (type(c.ttl) == "string" and c.ttl:match("^%d+[smhd]$")) then
        error(cw .. ": ttl '" .. tostring(c.ttl) .. "' must be a duration like \"30m\" (a whole number and s, m, h or d)", 3)
      end
      if c.jitter ~= nil and (type(c.jitter) ~= "number" or c.jitter < 0 or c.jitter > 1) then
        error(cw .. ": jitter '" .. tostring(c.jitter) .. "' must be a fraction from 0 to 1 (0.1: ttl +/- 10%)", 3)
      end
    end
  elseif cfg.classes ~= nil then
    error(what .. ": classes must be a table { NAME = { ttl = \"30m\", jitter = 0.1 } }", 3)
  end
end

-- hosts = one host or a list of them (hosts { ... }), each a host table
local function list_of(name, what, x)
  if x == nil then return {} end
  if type(x) == "table" and (x.address or x.name) then return { x } end   -- a single host
  local ok = type(x) == "table"
  for _, h in ipairs(ok and x or {}) do ok = ok and type(h) == "table" and h.name ~= nil and h.address ~= nil end
  if not ok then
    local bad = type(x) == "table" and x[1] or x
    error("cache_cluster '" .. name .. "': " .. what .. " must be hosts (hosts { role = \"cache\" } or a host), not " ..
          (type(bad) == "string" and "'" .. bad .. "'" or "a " .. type(bad)), 3)
  end
  return x
end

local function redis_conf(node, cfg)
  return table.concat({
    "# written by iac: cache node " .. node.name,
    "bind " .. node.address .. (node.address ~= "127.0.0.1" and " 127.0.0.1" or ""),
    "port " .. node.port,
    "protected-mode no",
    "daemonize yes",
    "supervised no",
    "pidfile " .. node.pidfile,
    "logfile /var/log/iac-cache/" .. node.name .. ".log",
    "dir /var/lib/iac-cache/" .. node.name,
    "maxmemory " .. (cfg.memory or "64mb"),
    "maxmemory-policy " .. (cfg.policy or "allkeys-lru"),
    "save \"\"",
    "appendonly no",
    "",
  }, "\n")
end

-- memcached has no configuration file: its flags live in one, so a change
-- by hand still shows as a diff and restarts the node
local function memcached_conf(name, node, cfg)
  local args = "-l " .. node.address .. " -p " .. node.port .. " -U 0 -m " .. megabytes(name, cfg.memory or "64mb") .. " -c 1024"
  if cfg.policy == "noeviction" then args = args .. " -M" end
  return args .. "\n"
end

return function(name, helpers)
  return function(cfg)
    if type(cfg) ~= "table" then error("cache_cluster '" .. name .. "': expected a table { ... }", 2) end
    check_settings(name, cfg, helpers and helpers.check_keys)
    local engine = cfg.engine or "redis"
    if engine ~= "redis" and engine ~= "memcached" then
      error("cache_cluster '" .. name .. "': engine must be \"redis\" or \"memcached\", not '" .. tostring(engine) .. "'" ..
            did_you_mean(helpers, engine, { "redis", "memcached" }), 2)
    end
    local hs = list_of(name, "hosts", cfg.hosts)
    if #hs == 0 then error("cache_cluster '" .. name .. "': 'hosts' (one or more hosts) is required", 2) end
    local per_host = cfg.per_host or 1
    if type(per_host) ~= "number" or per_host < 1 or per_host % 1 ~= 0 then
      error("cache_cluster '" .. name .. "': per_host must be a whole number >= 1", 2)
    end
    local ring = cfg.ring or {}
    if ring.hash ~= nil and ring.hash ~= "ketama" then
      error("cache_cluster '" .. name .. "': ring.hash must be \"ketama\", not '" .. tostring(ring.hash) .. "'", 2)
    end
    local v = ring.vnodes
    if v ~= nil and (type(v) ~= "number" or v % 1 ~= 0 or v < 4 or v > 4096 or v % 4 ~= 0) then
      error("cache_cluster '" .. name .. "': ring.vnodes " .. tostring(v) .. " must be a multiple of 4 between 4 and 4096", 2)
    end
    local proxy_port = port_of(name, "proxy.port", cfg.proxy and cfg.proxy.port, 22121)
    local stats_port = port_of(name, "proxy.stats_port", cfg.proxy and cfg.proxy.stats_port, 22222)
    local exporter_port = port_of(name, "exporter.port", type(cfg.exporter) == "table" and cfg.exporter.port or nil, 9121)
    local sentinel_port = port_of(name, "sentinel.port", cfg.sentinel and cfg.sentinel.port, 26379)
    local down_after = cfg.sentinel and cfg.sentinel.down_after_ms or 1000
    if type(down_after) ~= "number" or down_after % 1 ~= 0 or down_after < 1 then
      error("cache_cluster '" .. name .. "': sentinel.down_after_ms must be a whole number of milliseconds >= 1", 2)
    end
    if engine == "memcached" then megabytes(name, cfg.memory or "64mb") else kilobytes(name, cfg.memory or "64mb") end
    if cfg.policy ~= nil then
      local ok = false
      for _, p in ipairs(redis_policies) do ok = ok or cfg.policy == p end
      if engine == "memcached" and ok and cfg.policy ~= "allkeys-lru" and cfg.policy ~= "noeviction" then
        error("cache_cluster '" .. name .. "': policy '" .. cfg.policy .. "' is Redis only: memcached evicts the least " ..
              "recently used keys (\"allkeys-lru\", the default) or none (\"noeviction\")", 2)
      elseif not ok then
        error("cache_cluster '" .. name .. "': policy '" .. tostring(cfg.policy) .. "' is not one of " ..
              table.concat(redis_policies, ", ") .. did_you_mean(helpers, cfg.policy, redis_policies), 2)
      end
    end
    local base = port_of(name, "base_port", cfg.base_port, engine == "redis" and 6379 or 11211)
    if base + per_host - 1 > 65535 then
      error("cache_cluster '" .. name .. "': base_port " .. base .. " + per_host leaves the port range", 2)
    end
    local replicas = cfg.replicas or 0
    if replicas ~= 0 and replicas ~= 1 then
      error("cache_cluster '" .. name .. "': replicas must be 0 or 1", 2)
    end
    if replicas == 1 and engine ~= "redis" then
      error("cache_cluster '" .. name .. "': replicas = 1 needs engine = \"redis\" (Sentinel fails over Redis only)", 2)
    end
    -- with replicas a node's primary can move: the ring's points hash the
    -- node's name, so a failover changes an address, never where keys go
    local point_names = replicas == 1 and "name" or nil
    -- a node that Sentinel may reconfigure (REPLICAOF, CONFIG REWRITE) runs
    -- from a copy of iac's file, so its rewrites never read as drift
    local function redis_start(nname, conf_path)
      local dir = "/var/lib/iac-cache/" .. nname
      if replicas == 0 then
        return "mkdir -p " .. dir .. " /var/log/iac-cache && redis-server " .. conf_path
      end
      return "mkdir -p " .. dir .. " /var/log/iac-cache && cp " .. conf_path .. " " .. dir .. "/redis.conf && redis-server " ..
             dir .. "/redis.conf"
    end

    local nodes, services, specs = {}, {}, {}
    for hi, h in ipairs(hs) do
      for k = 1, per_host do
        -- named by host and slot, so that growing per_host or adding a
        -- host renames nothing (nothing restarts, state keeps its addresses)
        local node = {
          name = name .. "-" .. h.name .. "-" .. k, host = h, address = h.address, port = base + k - 1,
        }
        node.pidfile = "/run/iac-cache-" .. node.name .. ".pid"
        local rname = name .. "_" .. h.name .. "_" .. k
        local conf_path = "/etc/iac-cache/" .. node.name .. ".conf"
        local conf, start
        if engine == "redis" then
          conf = resource "ssh.file" (rname .. "_conf") { host = h, path = conf_path, content = redis_conf(node, cfg) }
          start = redis_start(node.name, conf_path)
        else
          conf = resource "ssh.file" (rname .. "_conf") { host = h, path = conf_path, content = memcached_conf(name, node, cfg) }
          start = "install -d -o memcache /run/iac-cache && memcached -d -u memcache $(cat " .. conf_path .. ")" ..
                  " -P /run/iac-cache/" .. node.name .. ".pid"
          node.pidfile = "/run/iac-cache/" .. node.name .. ".pid"
        end
        node.service = resource "ssh.service" (rname) {
          host = h, start = start, pidfile = node.pidfile, restart_on = { conf },
        }
        if cfg.exporter and engine == "redis" then
          -- prometheus-redis-exporter (Debian) beside each node, on the node's
          -- address, port exporter.port + K - 1 (default 9121)
          node.exporter_port = exporter_port + k - 1
          node.exporter = resource "ssh.service" (rname .. "_exporter") {
            host = h, depends_on = { node.service },
            start = "prometheus-redis-exporter -redis.addr redis://" .. node.address .. ":" .. node.port ..
                    " -web.listen-address " .. node.address .. ":" .. node.exporter_port,
            pidfile = "/run/iac-cache-" .. node.name .. "-exporter.pid",
            log = "/var/log/iac-cache-" .. node.name .. "-exporter.log",
          }
        end
        nodes[#nodes + 1] = node
        services[#services + 1] = node.service
        if replicas == 1 then
          -- the replica lives on the next host (the same one when there is one)
          local rh = hs[(hi % #hs) + 1]
          local rep = { name = node.name .. "-r", host = rh, address = rh.address, port = node.port + 1000 }
          rep.pidfile = "/run/iac-cache-" .. rep.name .. ".pid"
          local rpath = "/etc/iac-cache/" .. rep.name .. ".conf"
          local rconf = resource "ssh.file" (rname .. "_replica_conf") {
            host = rh, path = rpath,
            content = redis_conf(rep, cfg) .. "replicaof " .. node.address .. " " .. node.port .. "\n",
          }
          rep.service = resource "ssh.service" (rname .. "_replica") {
            host = rh, start = redis_start(rep.name, rpath), pidfile = rep.pidfile, restart_on = { rconf },
            depends_on = { node.service },
          }
          node.replica = rep
          services[#services + 1] = rep.service
        end
        specs[#specs + 1] = { name = node.name, address = node.address, port = node.port, weight = 1 }
      end
    end

    -- three Sentinels over the cache hosts (two on one host when there are
    -- only two hosts...), each watching every node by its name
    local sentinels = nil
    if replicas == 1 then
      sentinels = {}
      local sport = sentinel_port
      for j = 1, 3 do
        local sh = hs[((j - 1) % #hs) + 1]
        local p = sport + (j - 1) // #hs
        local sname = name .. "-sentinel-" .. j
        local dir = "/var/lib/iac-cache/" .. sname
        local lines = {
          "# written by iac: Sentinel " .. j .. " of cache_cluster " .. name,
          "port " .. p, "bind " .. sh.address, "protected-mode no", "daemonize yes",
          "pidfile /run/iac-cache-" .. sname .. ".pid", "logfile /var/log/iac-cache/" .. sname .. ".log", "dir " .. dir,
        }
        for _, n in ipairs(nodes) do
          lines[#lines + 1] = "sentinel monitor " .. n.name .. " " .. n.address .. " " .. n.port .. " 2"
          lines[#lines + 1] = "sentinel down-after-milliseconds " .. n.name .. " " .. down_after
          lines[#lines + 1] = "sentinel failover-timeout " .. n.name .. " 3000"
          lines[#lines + 1] = "sentinel parallel-syncs " .. n.name .. " 1"
          -- Sentinel otherwise learns a replica from the primary's INFO,
          -- asked every 10 s: a primary that dies before the replica is
          -- seen leaves nothing to promote ("-failover-abort-no-good-slave"
          -- every 6 s, for ever). iac knows the replica: say it up front.
          lines[#lines + 1] = "sentinel known-replica " .. n.name .. " " .. n.replica.address .. " " .. n.replica.port
        end
        local spath = "/etc/iac-cache/" .. sname .. ".conf"
        local sconf = resource "ssh.file" (name .. "_sentinel_" .. j .. "_conf") {
          host = sh, path = spath, content = table.concat(lines, "\n") .. "\n",
        }
        -- Sentinel rewrites its file: it runs from a copy of iac's
        services[#services + 1] = resource "ssh.service" (name .. "_sentinel_" .. j) {
          host = sh, restart_on = { sconf }, pidfile = "/run/iac-cache-" .. sname .. ".pid",
          start = "mkdir -p " .. dir .. " /var/log/iac-cache && cp " .. spath .. " " .. dir .. "/sentinel.conf && " ..
                  "redis-server " .. dir .. "/sentinel.conf --sentinel",
          depends_on = (function() local d = {} for _, n in ipairs(nodes) do d[#d + 1] = n.service end return d end)(),
        }
        sentinels[#sentinels + 1] = sh.address .. ":" .. p
      end
    end

    local cluster = resource "cache.cluster" (name) {
      cluster = name, engine = engine, hash = "ketama", key_hash = ring.key_hash, hash_tag = ring.hash_tag,
      vnodes = ring.vnodes, nodes = specs, classes = cfg.classes, warm = cfg.warm,
      point_names = point_names, sentinels = sentinels, depends_on = services,
      -- l1 = lb (haproxy with cache = { ... }): iac status cache reports both levels
      l1 = type(cfg.l1) == "table" and { api = cfg.l1.api, backend = cfg.l1.backend } or nil,
    }
    -- the ring and the proxies change after the cluster: warming (in the
    -- cluster's update) runs before clients see the new ring
    local after = { cluster }
    for _, s in ipairs(services) do after[#after + 1] = s end

    local rings = {}
    local pub = cfg.publish and cfg.publish.file
    if pub then
      if not pub.path then error("cache_cluster '" .. name .. "': publish.file needs a 'path'", 2) end
      for _, h in ipairs(list_of(name, "publish.file.hosts", pub.hosts)) do
        rings[#rings + 1] = resource "cache.ring" (name .. "_ring_" .. h.name) {
          host = h, path = pub.path, cluster = name, engine = engine, hash = "ketama",
          key_hash = ring.key_hash, hash_tag = ring.hash_tag, vnodes = ring.vnodes,
          nodes = specs, classes = cfg.classes, depends_on = after,
          point_names = point_names, sentinels = sentinels,
        }
      end
    end

    local etcd = cfg.publish and cfg.publish.etcd
    if etcd then
      if not etcd.endpoints or not etcd.key then
        error("cache_cluster '" .. name .. "': publish.etcd needs 'endpoints' and 'key'", 2)
      end
      rings[#rings + 1] = resource "cache.ring" (name .. "_ring_etcd") {
        endpoints = etcd.endpoints, key = etcd.key, cluster = name, engine = engine, hash = "ketama",
        key_hash = ring.key_hash, hash_tag = ring.hash_tag, vnodes = ring.vnodes,
        nodes = specs, classes = cfg.classes, depends_on = after,
        point_names = point_names, sentinels = sentinels,
      }
    end

    local proxies = {}
    if cfg.proxy and cfg.proxy.hosts == nil then
      error("cache_cluster '" .. name .. "': proxy needs 'hosts' (where twemproxy runs)", 2)
    end
    if cfg.proxy then
      local port = proxy_port
      for _, h in ipairs(list_of(name, "proxy.hosts", cfg.proxy.hosts)) do
        local pname = name .. "_proxy_" .. h.name
        local path = "/etc/iac-cache/" .. name .. "-twemproxy.yml"
        local pidfile = "/run/iac-cache-" .. name .. "-twemproxy.pid"
        local start = "mkdir -p /var/log/iac-cache && nutcracker -d -c " .. path .. " -p " .. pidfile ..
                      " -o /var/log/iac-cache/" .. name .. "-twemproxy.log -a 127.0.0.1 -s " ..
                      stats_port
        local pconf = resource "cache.proxy" (pname .. "_conf") {
          host = h, path = path, cluster = name, engine = engine, listen = h.address .. ":" .. port,
          key_hash = ring.key_hash, hash_tag = ring.hash_tag, vnodes = ring.vnodes, nodes = specs,
          point_names = point_names, sentinels = sentinels, depends_on = after,
          -- a failover rewrites the file without changing the declaration:
          -- the proxy restarts itself to read it
          restart = "p=$(cat " .. pidfile .. " 2>/dev/null); if [ -n \"$p\" ] && kill $p 2>/dev/null; then " ..
                    "while kill -0 $p 2>/dev/null; do sleep 0.05; done; " .. start .. "; fi",
        }
        proxies[#proxies + 1] = resource "ssh.service" (pname) {
          host = h, restart_on = { pconf }, depends_on = services, pidfile = pidfile, start = start,
        }
      end
    end
    return { name = name, engine = engine, cluster = cluster, nodes = nodes, services = services, rings = rings, proxies = proxies }
  end
end
