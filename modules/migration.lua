-- migration: a SQL file applied once to a postgres_cluster's leader
-- (resource db.migration; docs/db.md).
--
--   migration "0007_add_order_status" {
--     db = db,                              -- from postgres_cluster
--     expand = "sql/0007_expand.sql",       -- relative to main.lua
--     lock_timeout = "2s", retries = 5,     -- SET lock_timeout; retried with backoff
--     database = "postgres",
--   }
--
-- Recorded in schema_migrations with its SHA-256: an applied file that was
-- edited is refused. Only the expand phase for now: `contract` and
-- `deployment` (contract after a blue/green switch) are refused.
return function(name, helpers)
  return function(cfg)
    -- level 3: fail's caller is this function, whose caller is the user's line
    local function fail(msg) error("migration '" .. name .. "': " .. msg, 3) end
    if type(cfg) ~= "table" then fail("expected a table { ... }") end
    if helpers and helpers.check_keys then
      helpers.check_keys(cfg, "migration '" .. name .. "'",
                         { "db", "expand", "contract", "deployment", "lock_timeout", "retries", "database" })
    end
    if type(cfg.db) ~= "table" or not cfg.db.members then fail("'db' (from postgres_cluster) is required") end
    if not cfg.expand then fail("'expand' (a SQL file) is required") end
    if cfg.contract ~= nil or cfg.deployment ~= nil then
      fail("'contract' and 'deployment' (contract after a blue/green switch) are not supported yet")
    end
    return resource "db.migration" (name) {
      name = name, cluster = cfg.db.name, members = cfg.db.members, expand = cfg.expand,
      database = cfg.database, lock_timeout = cfg.lock_timeout, retries = cfg.retries,
      depends_on = cfg.db.nodes,
    }
  end
end
