-- lag_gate: a deployment gate on replication lag (resource db.lag_gate;
-- docs/db.md). The deployment lists it in depends_on; the gate carries the
-- version, so each new version checks the replicas first:
--
--   local gate = lag_gate "main" { db = db, version = var.version, max_lag = "1MB",
--                                  max_lag_seconds = 5, timeout = "30s" }
--   deployment "web" { version = var.version, ..., depends_on = { gate } }
local units = { B = 1, kB = 1024, KB = 1024, MB = 1048576, GB = 1073741824 }

return function(name, helpers)
  return function(cfg)
    local function fail(msg) error("lag_gate '" .. name .. "': " .. msg, 3) end
    if type(cfg) ~= "table" then fail("expected a table { ... }") end
    if helpers and helpers.check_keys then
      helpers.check_keys(cfg, "lag_gate '" .. name .. "'", { "db", "version", "max_lag", "max_lag_seconds", "timeout" })
    end
    if type(cfg.db) ~= "table" or not cfg.db.members then fail("'db' (from postgres_cluster) is required") end
    if cfg.version == nil then fail("'version' (the deployment's, var.version) is required") end
    local max = cfg.max_lag
    if type(max) == "string" then
      local n, unit = max:match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
      if not n or not units[unit ~= "" and unit or "B"] then fail("max_lag '" .. max .. "' is not a size (\"1MB\", \"512kB\", bytes)") end
      max = math.floor(tonumber(n) * units[unit ~= "" and unit or "B"])
    end
    return resource "db.lag_gate" (name) {
      cluster = cfg.db.name, members = cfg.db.members, version = cfg.version, max_lag = max,
      max_lag_seconds = cfg.max_lag_seconds, timeout = cfg.timeout, depends_on = cfg.db.nodes,
    }
  end
end
