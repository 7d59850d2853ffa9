-- postgres_cluster: PostgreSQL 15 with streaming replicas, failover by
-- Patroni on etcd, and HAProxy's read/write split (resources db.patroni_node
-- and db.proxy; docs/db.md).
--
--   variable "pg_superuser"   { sensitive = true }
--   variable "pg_replication" { sensitive = true }
--   local db = postgres_cluster "main" {
--     hosts = hosts { role = "db" },     -- 3 hosts: 1 leader + 2 streaming replicas
--     version = 15, ha = "patroni", dcs = etcd_endpoints,   -- { "http://10.0.0.1:2379" }
--     settings = { max_connections = 200, shared_buffers = "128MB" },
--     endpoints = { rw = 5432, ro = 5433 },  -- HAProxy listeners
--     proxy = lb1,                           -- where HAProxy runs (default: every db host)
--     max_lag = "1MB",                       -- a replica further behind leaves the ro pool
--     superuser_password = var.pg_superuser, replication_password = var.pg_replication,
--   }
--
-- Optional: port (PostgreSQL, default 5432), api_port (Patroni, 8008),
-- ttl (leader key TTL, 10 s), loop_wait (2 s), clients (CIDRs apps connect
-- from; default "samenet"), pg_hba (extra lines), pooler = { engine =
-- "pgbouncer", mode = "transaction", pool_size = 20, port = 6432,
-- max_client_conn = 1000 } (PgBouncer on every member; HAProxy then sends
-- clients to it), exporter = true or { port = 9187 }
-- (prometheus-postgres-exporter on every member, for Prometheus). Passwords must come from
-- sensitive variables: they are redacted in output and state.
-- Returns { name, nodes = {...}, proxies = {...}, members = {{host, name, port, api_port}...},
-- rw = "ADDR:PORT", ro = ... } (members: what `migration` needs).
local function bytes(name, v)
  if v == nil then return 1048576 end
  if type(v) == "number" then return math.floor(v) end
  local n, unit = tostring(v):match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
  local mult = { [""] = 1, B = 1, kB = 1024, KB = 1024, MB = 1048576, GB = 1073741824 }
  if not n or not mult[unit] then
    error("postgres_cluster '" .. name .. "': max_lag '" .. tostring(v) .. "' is not a size (\"1MB\", \"512kB\", bytes)", 3)
  end
  return math.floor(tonumber(n) * mult[unit])
end

local function secret(name, cfg, key)
  local v = cfg[key]
  if v == nil then error("postgres_cluster '" .. name .. "': '" .. key .. "' is required (a sensitive variable)", 3) end
  if type(v) == "string" or type(v) == "number" then
    error("postgres_cluster '" .. name .. "': '" .. key .. "' must come from a sensitive variable " ..
          "(variable \"x\" { sensitive = true }), not a literal", 3)
  end
  return v
end

-- a port setting: nil (the default) or a whole number 1-65535
local function port_of(name, what, v, default)
  if v == nil then return default end
  if type(v) ~= "number" or v % 1 ~= 0 or v < 1 or v > 65535 then
    error("postgres_cluster '" .. name .. "': " .. what .. " must be a port number (1-65535), not '" .. tostring(v) .. "'", 3)
  end
  return v
end

return function(name, helpers)
  return function(cfg)
    -- level 3: fail's caller is this function, whose caller is the user's line
    local function fail(msg) error("postgres_cluster '" .. name .. "': " .. msg, 3) end
    if type(cfg) ~= "table" then fail("expected a table { ... }") end
    local check = helpers and helpers.check_keys
    if check then
      -- settings is PostgreSQL's own (free-form); every other table is ours
      local what = "postgres_cluster '" .. name .. "'"
      check(cfg, what, { "hosts", "version", "ha", "dcs", "settings", "endpoints", "proxy", "max_lag",
                         "superuser_password", "replication_password", "port", "api_port", "ttl", "loop_wait",
                         "clients", "pg_hba", "pooler", "depends_on", "exporter" })
      check(cfg.endpoints, what .. ": endpoints", { "rw", "ro" })
      check(cfg.pooler, what .. ": pooler", { "engine", "mode", "pool_size", "port", "max_client_conn" })
      if type(cfg.exporter) == "table" then check(cfg.exporter, what .. ": exporter", { "port" }) end
    end
    if type(cfg.hosts) ~= "table" or #cfg.hosts == 0 then fail("'hosts' (at least one host) is required") end
    for _, h in ipairs(cfg.hosts) do
      if type(h) ~= "table" or not h.name or not h.address then
        fail("hosts must be hosts (hosts { role = \"db\" }), not " .. (type(h) == "string" and "'" .. h .. "'" or "a " .. type(h)))
      end
    end
    if cfg.proxy ~= nil and (type(cfg.proxy) ~= "table" or not cfg.proxy.address) then
      fail("proxy must be one host (local lb1 = host \"lb1\" { ... }; proxy = lb1)")
    end
    if (cfg.ha or "patroni") ~= "patroni" then fail("ha = \"patroni\" is the only choice") end
    local pooler = cfg.pooler
    if pooler ~= nil then
      if type(pooler) ~= "table" or (pooler.engine or "pgbouncer") ~= "pgbouncer" then
        fail("pooler = { engine = \"pgbouncer\", mode = ..., pool_size = ... } (pgbouncer is the only engine)")
      end
    end
    local dcs = cfg.dcs
    if type(dcs) == "string" then dcs = { dcs } end
    if type(dcs) ~= "table" or #dcs == 0 then fail("'dcs' (etcd endpoints) is required") end
    local su = secret(name, cfg, "superuser_password")
    local rep = secret(name, cfg, "replication_password")
    local port, api_port = port_of(name, "port", cfg.port, 5432), port_of(name, "api_port", cfg.api_port, 8008)
    local ep = cfg.endpoints
    if ep ~= nil and type(ep) ~= "table" then fail("endpoints must be a table { rw = 5432, ro = 5433 }") end
    local members, nodes, node_list = {}, {}, {}
    for _, h in ipairs(cfg.hosts) do members[#members + 1] = h.address end
    for _, h in ipairs(cfg.hosts) do
      -- the passwords live only here: whatever is computed from a secret is
      -- redacted, and the nodes' roles must stay readable
      local creds = resource "db.credentials" (name .. "_" .. h.name .. "_auth") {
        host = h, cluster = name, superuser_password = su, replication_password = rep,
      }
      local deps = { creds }
      for _, d in ipairs(cfg.depends_on or {}) do deps[#deps + 1] = d end
      local r = resource "db.patroni_node" (name .. "_" .. h.name) {
        host = h, cluster = name, name = h.name, version = cfg.version or 15, port = port, api_port = api_port,
        dcs = dcs, members = members, clients = cfg.clients, pg_hba = cfg.pg_hba, settings = cfg.settings,
        ttl = cfg.ttl, loop_wait = cfg.loop_wait, max_lag_failover = bytes(name, cfg.max_lag),
        depends_on = deps,
      }
      nodes[#nodes + 1] = r
      local target = port
      if pooler then
        -- HAProxy sends clients to the member's PgBouncer, Patroni still says who leads
        target = port_of(name, "pooler.port", pooler.port, 6432)
        resource "db.pooler" (name .. "_" .. h.name .. "_pooler") {
          host = h, cluster = name, port = target, pg_port = port, mode = pooler.mode,
          pool_size = pooler.pool_size, max_client_conn = pooler.max_client_conn, depends_on = { creds, r },
        }
      end
      if cfg.exporter then
        -- prometheus-postgres-exporter beside the member, over its socket
        local ex = type(cfg.exporter) == "table" and cfg.exporter or {}
        resource "db.exporter" (name .. "_" .. h.name .. "_exporter") {
          host = h, cluster = name, port = port_of(name, "exporter.port", ex.port, 9187), pg_port = port,
          depends_on = { r },
        }
      end
      node_list[#node_list + 1] = { name = h.name, address = h.address, port = target, api_port = api_port }
    end
    local member_hosts = {}
    for _, h in ipairs(cfg.hosts) do
      member_hosts[#member_hosts + 1] = { host = h, name = h.name, port = port, api_port = api_port }
    end
    local out = { name = name, nodes = nodes, proxies = {}, members = member_hosts }
    if ep then
      local rw, ro = port_of(name, "endpoints.rw", ep.rw, 5432), port_of(name, "endpoints.ro", ep.ro, 5433)
      local where = cfg.proxy and { cfg.proxy } or cfg.hosts
      if not cfg.proxy and (rw == port or ro == port) then
        fail("endpoints (" .. rw .. ", " .. ro .. ") clash with PostgreSQL's port " .. port ..
             " on the same hosts: set proxy = HOST, or port = ANOTHER")
      end
      for i, h in ipairs(where) do
        out.proxies[#out.proxies + 1] = resource "db.proxy" (name .. (#where > 1 and "_" .. h.name or "")) {
          host = h, cluster = name, nodes = node_list, rw = rw, ro = ro, max_lag = bytes(name, cfg.max_lag),
        }
        if i == 1 then
          out.rw = h.address .. ":" .. rw
          out.ro = h.address .. ":" .. ro
        end
      end
    end
    return out
  end
end
