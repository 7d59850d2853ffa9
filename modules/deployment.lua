-- deployment: blue/green deploys of a pool behind HAProxy (deploy.blue_green).
--
--   deployment "web" {
--     strategy = "blue_green", version = var.version, pool = pool, lb = lb,
--     health   = { path = "/health", expect = 200, interval = "500ms", healthy = 3, timeout = "30s" },
--     analysis = { duration = "10s", max_error_rate = 0.01, max_p99 = "300ms",
--                  prometheus = { url = "http://127.0.0.1:9090", query = "...", max = 0.05 } },
--     scale_down_delay = "5m", flags_on_rollback = { checkout_v2 = "off" },
--     on_failure = "stop",     -- or "keep" the idle colour running when a gate fails
--     drain_timeout = "30s",   -- requests in flight on the old colour at a switch
--   }
--
-- With an lb of several HAProxy hosts (haproxy { hosts = ... }), every
-- one of them is switched, and rolled back, the same way.
--
-- `iac apply` with a new version: idle colour started at it, health gate,
-- analysis, switch, old colour kept as standby. `iac rollback web` switches
-- back in about a second.
return function(name)
  return function(cfg)
    assert(type(cfg) == "table", "deployment '" .. name .. "': expected a table { ... }")
    local lb = cfg.lb or error("deployment '" .. name .. "': 'lb' (from haproxy) is required", 2)
    local deps = { lb.resource }
    for _, r in ipairs(lb.resources or {}) do
      if r ~= lb.resource then deps[#deps + 1] = r end
    end
    for _, d in ipairs(cfg.depends_on or {}) do deps[#deps + 1] = d end
    return resource "deploy.blue_green" (name) {
      strategy = cfg.strategy or "blue_green", version = cfg.version, pool = cfg.pool,
      lb = { api = lb.api, backend = lb.backend, state_file = lb.state_file, host = lb.host,
             peers = lb.peers and #lb.peers > 0 and lb.peers or nil },
      health = cfg.health, analysis = cfg.analysis, scale_down_delay = cfg.scale_down_delay,
      flags_on_rollback = cfg.flags_on_rollback, on_failure = cfg.on_failure,
      drain_timeout = cfg.drain_timeout,
      depends_on = deps,
    }
  end
end
