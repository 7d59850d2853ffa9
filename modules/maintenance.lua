-- maintenance: materialized views refreshed after migrations and on a
-- schedule, indexes rebuilt on a schedule, without blocking the application
-- (resource db.maintenance; `iac db maintain` runs what is due; docs/db.md).
--
--   maintenance "nightly" {
--     db = db,
--     refresh = { "daily_sales" },   -- REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index)
--     reindex = { "orders" },        -- REINDEX TABLE CONCURRENTLY
--     every = "24h",                 -- `iac db maintain` (cron, CI schedule) runs them when due
--     after = { m7 },                -- migrations: a change here refreshes the views at apply
--   }
return function(name, helpers)
  return function(cfg)
    local function fail(msg) error("maintenance '" .. name .. "': " .. msg, 3) end
    if type(cfg) ~= "table" then fail("expected a table { ... }") end
    if helpers and helpers.check_keys then
      helpers.check_keys(cfg, "maintenance '" .. name .. "'",
                         { "db", "refresh", "reindex", "every", "after", "database", "lock_timeout", "depends_on" })
    end
    if type(cfg.db) ~= "table" or not cfg.db.members then fail("'db' (from postgres_cluster) is required") end
    -- called from this function: one level more to reach the user's line
    local function fail2(msg) error("maintenance '" .. name .. "': " .. msg, 4) end
    local function names(key)
      local v = cfg[key]
      if v == nil then return nil end
      if type(v) == "string" then v = { v } end
      if type(v) ~= "table" then fail2(key .. " must be a list of names") end
      for _, n in ipairs(v) do
        if type(n) ~= "string" or not (n:match("^[%a_][%w_]*$") or n:match("^[%a_][%w_]*%.[%a_][%w_]*$")) then
          fail2(key .. ": '" .. tostring(n) .. "' is not a name (name or schema.name: letters, digits, '_')")
        end
      end
      return v
    end
    local refresh, reindex = names("refresh"), names("reindex")
    if (not refresh or #refresh == 0) and (not reindex or #reindex == 0) then
      fail("nothing to do: give 'refresh' (views) and/or 'reindex' (tables)")
    end
    if cfg.every ~= nil and (type(cfg.every) ~= "string" or not cfg.every:match("^%d+%.?%d*[mh]?s?$")) then
      fail("every '" .. tostring(cfg.every) .. "' is not a duration (\"24h\", \"30m\", \"90s\")")
    end
    for _, k in ipairs({ "after", "depends_on" }) do
      if cfg[k] ~= nil and (type(cfg[k]) ~= "table" or getmetatable(cfg[k])) then
        fail(k .. " must be a list of resources: " .. k .. " = { m }")
      end
    end
    local deps = {}
    for _, n in ipairs(cfg.db.nodes or {}) do deps[#deps + 1] = n end
    for _, d in ipairs(cfg.after or {}) do deps[#deps + 1] = d end
    for _, d in ipairs(cfg.depends_on or {}) do deps[#deps + 1] = d end
    return resource "db.maintenance" (name) {
      name = name, cluster = cfg.db.name, members = cfg.db.members, refresh = refresh, reindex = reindex,
      every = cfg.every, after = cfg.after, database = cfg.database, lock_timeout = cfg.lock_timeout,
      depends_on = deps,
    }
  end
end
