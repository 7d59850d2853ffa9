-- haproxy: HAProxy 2.6 in front of an app pool (resource deploy.haproxy).
--
--   local lb = haproxy "lb" {
--     host = lb1,                       -- omit: this machine
--     bind = "127.0.0.1:18080",
--     pool = pool,                      -- from app_pool: both colours become servers
--     backend = "app",
--     health = { path = "/health", interval = "100ms", rise = 2, fall = 2 },
--   }
--
-- The config is checked with `haproxy -c` before any (re)load; master-worker
-- mode; `option idle-close-on-response` and a server-state-file so reloads
-- under keep-alive load drop nothing and keep runtime changes. Returns what
-- a deployment needs: { resource, api, backend, state_file, host }.
return function(name)
  return function(cfg)
    assert(type(cfg) == "table", "haproxy '" .. name .. "': expected a table { ... }")
    if not cfg.pool then error("haproxy '" .. name .. "': 'pool' (from app_pool) is required", 2) end
    local servers = {}
    for _, inst in ipairs(cfg.pool.instances) do
      servers[#servers + 1] = { name = inst.name, address = inst.address, port = inst.port, colour = inst.colour }
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
    local r = resource "deploy.haproxy" (name) {
      host = cfg.host, bind = cfg.bind, backend = backend, servers = servers,
      health = health, dir = cfg.dir, api_port = cfg.api_port, timeouts = cfg.timeouts,
      depends_on = cfg.depends_on,
    }
    return { resource = r, api = r.api, backend = backend, state_file = r.state_file, host = cfg.host }
  end
end
