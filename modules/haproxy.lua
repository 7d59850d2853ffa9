-- haproxy: HAProxy 2.6 in front of an app pool (resource deploy.haproxy).
--
--   local lb = haproxy "lb" {
--     host = lb1,                       -- omit: this machine
--     bind = "127.0.0.1:18080",
--     pool = pool,                      -- from app_pool: both colours become servers
--     backend = "app",
--     health = { path = "/health", interval = "100ms", rise = 2, fall = 2 },
--     balance = "leastconn",            -- uneven request costs; default "roundrobin"
--     slowstart = "10s",                -- a server back in the pool ramps up, no cold flood
--     weights = "cpus",                 -- each server weighs its host's CPUs (ssh.facts);
--                                       -- or { app1 = 2, app2 = 1 } by host name
--   }
--
-- No single point of failure: several hosts with identical configs, and a
-- virtual IP that keepalived (VRRP) keeps on one of them:
--
--   local lb = haproxy "lb" {
--     hosts = { lb1, lb2 }, bind = "0.0.0.0:80", pool = pool,
--     vip = { address = "10.0.0.100/24", interface = "eth0", router_id = 51 },
--   }
--
-- The first host is preferred (priority 150, then 100, 90, ...); keepalived
-- checks its HAProxy every second and gives the address up when it is not
-- running. VRRP v3 with adverts every 0.5 s (vip.advert_int): a backup takes
-- over about 1.6 s after the holder went silent. A deployment over such an lb switches every HAProxy of it, and
-- `iac rollback` too. Clients use the virtual address.
--
-- A level-1 HTTP cache (HAProxy's cache; docs/cache.md "Multi-level"):
--   cache = { size_mb = 64, max_age = "60s", paths = { "/catalog/" }, release = var.version }
-- keyed by the live colour; a new `release` reloads HAProxy with an empty cache.
--
-- The config is checked with `haproxy -c` before any (re)load; master-worker
-- mode; `option idle-close-on-response` and a server-state-file so reloads
-- under keep-alive load drop nothing and keep runtime changes. Returns what
-- a deployment needs: { resource, api, backend, state_file, host, peers }.
local function keepalived(name, rname, h, i, n, vip, dir)
  local kdir = "/var/lib/iac/keepalived-" .. name
  local addr = vip.address:find("/", 1, true) and vip.address or (vip.address .. "/24")
  local iface = vip.interface or "eth0"
  local check = resource "ssh.file" (rname .. "_check") {
    host = h, path = kdir .. "/check-haproxy.sh", mode = "0755",
    content = "#!/bin/sh\n# keepalived: is this host's HAProxy running?\n"
      .. "kill -0 \"$(cat " .. dir .. "/haproxy.pid 2>/dev/null)\" 2>/dev/null\n",
  }
  local conf = resource "ssh.file" (rname .. "_vrrp") {
    host = h, path = kdir .. "/keepalived.conf", mode = "0644",
    content = table.concat({
      "# written by iac: haproxy \"" .. name .. "\", host " .. h.name .. " (" .. i .. " of " .. n .. ")",
      "global_defs {",
      "  router_id iac_" .. name .. "_" .. i,
      "  script_user root",
      "  enable_script_security",
      "  vrrp_version 3",
      "  # adverts must leave on time on a busy host: a late one makes the",
      "  # backup take the address while the holder still has it",
      "  vrrp_rt_priority 50",
      "  checker_rt_priority 50",
      "  # with realtime scheduling the kernel SIGKILLs a process that runs",
      "  # longer than RLIMIT_RTTIME without blocking (10 ms by default); on a",
      "  # busy host that killed the VRRP process and the address flapped",
      "  vrrp_rlimit_rttime 500000",
      "  checker_rlimit_rttime 500000",
      "}",
      "vrrp_script iac_haproxy_up {",
      "  script \"" .. kdir .. "/check-haproxy.sh\"",
      "  interval 1",
      "  fall 2",
      "  rise 2",
      "}",
      "vrrp_instance iac_" .. name .. " {",
      "  state " .. (i == 1 and "MASTER" or "BACKUP"),
      "  interface " .. iface,
      "  virtual_router_id " .. tostring(vip.router_id or 51),
      "  priority " .. tostring(i == 1 and 150 or 110 - 10 * i),
      "  advert_int " .. tostring(vip.advert_int or 0.5),
      -- neighbours ignore an ARP update within a second of the last one
      -- (the kernel's locktime): announce the address again 1 s after
      -- taking it, and every 5 s while holding it
      "  garp_master_delay 1",
      "  garp_master_repeat 3",
      "  garp_master_refresh 5",
      "  virtual_ipaddress {",
      "    " .. addr .. " dev " .. iface,
      "  }",
      "  track_script {",
      "    iac_haproxy_up",
      "  }",
      "}",
      "",
    }, "\n"),
  }
  return resource "ssh.service" (rname .. "_keepalived") {
    host = h,
    start = "keepalived -n -l -D -f " .. kdir .. "/keepalived.conf -p " .. kdir .. "/keepalived.pid -r "
      .. kdir .. "/vrrp.pid -c " .. kdir .. "/checkers.pid",
    pidfile = kdir .. "/keepalived.pid", log = kdir .. "/keepalived.log",
    restart_on = { conf, check },
  }
end

return function(name)
  return function(cfg)
    assert(type(cfg) == "table", "haproxy '" .. name .. "': expected a table { ... }")
    if not cfg.pool then error("haproxy '" .. name .. "': 'pool' (from app_pool) is required", 2) end
    if cfg.host and cfg.hosts then error("haproxy '" .. name .. "': give 'host' or 'hosts', not both", 2) end
    if cfg.vip and not cfg.hosts then error("haproxy '" .. name .. "': 'vip' needs 'hosts' (two or more)", 2) end
    if cfg.vip and (type(cfg.vip) ~= "table" or type(cfg.vip.address) ~= "string") then
      error("haproxy '" .. name .. "': 'vip' must be { address = \"10.0.0.100/24\", interface = \"eth0\", router_id = 51 }", 2)
    end
    -- weights = "cpus": each server weighs its host's CPU count (ssh.facts);
    -- or { [host name] = weight }; none: all equal
    local facts = {}
    local function weight_of(inst)
      local w = cfg.weights
      if w == nil or inst.host == nil then return nil end
      if w == "cpus" then
        local hn = inst.host.name
        facts[hn] = facts[hn] or data "ssh.facts" (name .. "_" .. hn) { host = inst.host }
        return facts[hn].cpus
      end
      if type(w) ~= "table" then error("haproxy '" .. name .. "': weights must be \"cpus\" or { [host] = weight }", 3) end
      return w[inst.host.name]
    end
    local servers = {}
    for _, inst in ipairs(cfg.pool.instances) do
      servers[#servers + 1] = { name = inst.name, address = inst.address, port = inst.port, colour = inst.colour,
                                weight = weight_of(inst) }
    end
    local backend = cfg.backend or "app"
    -- HAProxy's own checks every 100 ms unless told otherwise: a colour
    -- coming out of maint takes traffic only after one passes, so this is
    -- what the switch to 100 % waits for (~1 interval)
    local health = cfg.health or {}
    if health.interval == nil then
      local h = {}
      for k, v in pairs(health) do h[k] = v end
      h.interval = "100ms"
      health = h
    end
    local function one(rname, host, dir)
      return resource "deploy.haproxy" (rname) {
        host = host, bind = cfg.bind, backend = backend, servers = servers,
        health = health, dir = dir, api_port = cfg.api_port, timeouts = cfg.timeouts,
        balance = cfg.balance, slowstart = cfg.slowstart, depends_on = cfg.depends_on,
        cache = cfg.cache,
      }
    end
    if not cfg.hosts then
      local r = one(name, cfg.host, cfg.dir)
      return { resource = r, api = r.api, backend = backend, state_file = r.state_file, host = cfg.host }
    end
    if #cfg.hosts < 1 then error("haproxy '" .. name .. "': 'hosts' is empty", 2) end
    local out = { backend = backend, peers = {}, resources = {}, hosts = cfg.hosts,
                  vip = cfg.vip and cfg.vip.address:gsub("/.*", "") or nil }
    for i, h in ipairs(cfg.hosts) do
      local rname = name .. "_" .. h.name
      -- the same directory on every host: the configs differ only in what
      -- must (the runtime API's address, the frontend's name)
      local dir = cfg.dir or ("/var/lib/iac/haproxy-" .. name)
      local r = one(rname, h, dir)
      out.resources[#out.resources + 1] = r
      if cfg.vip then
        out.resources[#out.resources + 1] = keepalived(name, rname, h, i, #cfg.hosts, cfg.vip, dir)
      end
      if i == 1 then
        out.resource, out.api, out.state_file, out.host = r, r.api, r.state_file, h
      else
        out.peers[#out.peers + 1] = { api = r.api, state_file = r.state_file, host = h }
      end
    end
    return out
  end
end
