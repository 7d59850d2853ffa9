-- migration: a SQL migration in two phases, tied to a blue/green deployment
-- (resources db.migration and db.migration_contract; docs/db.md).
--
--   migration "0007_add_order_status" {
--     db = db,                              -- from postgres_cluster
--     expand = "sql/0007_expand.sql",       -- relative to main.lua
--     contract = "sql/0007_contract.sql",   -- optional; needs deployment
--     deployment = web,                     -- from deployment
--     lock_timeout = "2s", retries = 5,     -- SET lock_timeout; retried with backoff
--     database = "postgres",
--   }
--
-- expand runs before the deployment starts its idle colour (the deployment
-- waits for it); contract only once a deploy made after the expand is live,
-- was not rolled back, and its rollback window (the standby kept for
-- scale_down_delay) has passed: until then plan says what it waits for.
-- Each phase is recorded in schema_migrations with its SHA-256: an applied
-- file that was edited is refused. `iac db migrate -dry-run` shows the
-- statements and the locks they take.
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
    local dep = nil
    if cfg.deployment ~= nil then
      dep = tostring(cfg.deployment)
      if not dep:match("^deploy%.blue_green%.") and not dep:match("%.deploy%.blue_green%.") then
        fail("'deployment' must be a deployment (deployment \"web\" { ... }), not " .. dep)
      end
    end
    if cfg.contract ~= nil and dep == nil then
      fail("'contract' needs 'deployment': the contract runs after that deployment's rollback window")
    end
    local expand = resource "db.migration" (name) {
      name = name, cluster = cfg.db.name, members = cfg.db.members, expand = cfg.expand,
      database = cfg.database, lock_timeout = cfg.lock_timeout, retries = cfg.retries,
      deployment = dep, depends_on = cfg.db.nodes,
    }
    if cfg.contract == nil then return expand end
    local d = cfg.deployment
    resource "db.migration_contract" (name) {
      name = name, cluster = cfg.db.name, members = cfg.db.members, contract = cfg.contract,
      database = cfg.database, lock_timeout = cfg.lock_timeout, retries = cfg.retries,
      deployment = dep, expand_at = expand.applied_at,
      deploy = { live_version = d.live_version, standby = d.standby, standby_version = d.standby_version,
                 standby_until = d.standby_until, last = d.last },
      depends_on = { cfg.deployment },
    }
    return expand
  end
end
