-- partitions: declarative range partitioning of a large table, kept ahead
-- of need and trimmed by retention (resource db.partitions; docs/db.md).
-- What users otherwise do with pg_partman or a cron job.
--
--   migration "0001_events" { db = db, expand = "sql/0001_events.sql" }
--     -- CREATE TABLE events (...) PARTITION BY RANGE (created_at);
--   partitions "events" {
--     db = db, table = "events",     -- "schema.table" too; must be PARTITION BY RANGE (one column)
--     interval = "1 day",            -- "1 hour" | "1 day" | "1 week" | "1 month" (time column),
--                                    -- or a number: the width of a key range (integer column)
--     premake = 4,                   -- partitions kept ready after the current one
--     retention = "30 days",         -- partitions wholly older are removed (a number for keys:
--                                    -- wholly below the highest key minus it); omit to keep all
--     retention_mode = "drop",       -- or "detach": kept as plain tables, out of the parent
--     depends_on = { m },            -- the migration that creates the table
--   }
--
-- The plan lists the partitions to create and to remove; each is created
-- empty beside the table and attached (SHARE UPDATE EXCLUSIVE: reads and
-- writes go on), removed by DETACH ... CONCURRENTLY, all under lock_timeout
-- with retries.
return function(name, helpers)
  return function(cfg)
    local function fail(msg) error("partitions '" .. name .. "': " .. msg, 3) end
    if type(cfg) ~= "table" then fail("expected a table { ... }") end
    if helpers and helpers.check_keys then
      helpers.check_keys(cfg, "partitions '" .. name .. "'",
                         { "db", "table", "interval", "premake", "retention", "retention_mode", "database",
                           "lock_timeout", "retries", "depends_on" })
    end
    if type(cfg.db) ~= "table" or not cfg.db.members then fail("'db' (from postgres_cluster) is required") end
    local tbl = cfg.table or name
    if type(tbl) ~= "string" or not (tbl:match("^[%a_][%w_]*$") or tbl:match("^[%a_][%w_]*%.[%a_][%w_]*$")) then
      fail("table '" .. tostring(tbl) .. "' is not a table name (name or schema.name: letters, digits, '_')")
    end
    local iv = cfg.interval
    if iv == nil then fail("'interval' is required (\"1 day\", \"1 month\", ... or a key width such as 100000)") end
    if type(iv) == "number" then
      local w = math.tointeger(iv)
      if not w or w < 1 or w > 1e15 then fail("interval " .. tostring(iv) .. " must be a whole number from 1 to 10^15 (a key width)") end
      iv = string.format("%d", w)
    elseif type(iv) ~= "string" or not (iv:match("^%s*1?%s*hours?%s*$") or iv:match("^%s*1?%s*days?%s*$")
        or iv:match("^%s*1?%s*weeks?%s*$") or iv:match("^%s*1?%s*months?%s*$")) then
      fail("interval '" .. tostring(iv) .. "' is not one of \"1 hour\", \"1 day\", \"1 week\", \"1 month\" or a key width")
    end
    local keyed = iv:match("^%d+$") ~= nil
    local premake = cfg.premake or 4
    if type(premake) ~= "number" or premake < 0 or premake > 1000 or premake ~= math.floor(premake) then
      fail("premake must be a whole number from 0 to 1000, not '" .. tostring(cfg.premake) .. "'")
    end
    local ret = cfg.retention
    if ret ~= nil then
      if keyed then
        local r = type(ret) == "number" and math.tointeger(ret)
        if not r or r < 1 then
          fail("retention for a key range is a whole number of keys, not '" .. tostring(ret) .. "'")
        end
        ret = string.format("%d", r)
      elseif type(ret) ~= "string" or not ret:match("^%s*%d+%s*[%a]+%s*$")
          or not (ret:match("hours?%s*$") or ret:match("days?%s*$") or ret:match("weeks?%s*$") or ret:match("months?%s*$")
                  or ret:match("years?%s*$")) then
        fail("retention '" .. tostring(ret) .. "' is not a time span (\"30 days\", \"12 months\")")
      end
    end
    local mode = cfg.retention_mode or "drop"
    if mode ~= "drop" and mode ~= "detach" then fail("retention_mode must be \"drop\" or \"detach\", not '" .. tostring(mode) .. "'") end
    if cfg.retries ~= nil and (not math.tointeger(cfg.retries) or cfg.retries < 0 or cfg.retries > 100) then
      fail("retries must be a whole number from 0 to 100, not '" .. tostring(cfg.retries) .. "'")
    end
    -- a resource is a table with a metatable (any index gives a reference):
    -- only a plain list is walked
    if cfg.depends_on ~= nil and (type(cfg.depends_on) ~= "table" or getmetatable(cfg.depends_on)) then
      fail("depends_on must be a list of resources: depends_on = { m }")
    end
    local deps = {}
    for _, n in ipairs(cfg.db.nodes or {}) do deps[#deps + 1] = n end
    for _, d in ipairs(cfg.depends_on or {}) do deps[#deps + 1] = d end
    return resource "db.partitions" (name) {
      table = tbl, cluster = cfg.db.name, members = cfg.db.members, interval = iv, premake = premake,
      retention = ret, retention_mode = mode, database = cfg.database, lock_timeout = cfg.lock_timeout,
      retries = cfg.retries, depends_on = deps,
    }
  end
end
