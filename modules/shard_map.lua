-- shard_map: rows of a table spread over several postgres_clusters by
-- consistent hashing of a key (resource db.shard_map; docs/db.md, "Sharding").
--
--   local shards = shard_map "orders" {
--     cluster_set = { db_a, db_b },   -- from postgres_cluster
--     slots = 1024,                   -- key -> slot (md5); slot -> cluster (ketama)
--     key = "customer_id",            -- the column that places a row
--     hash = "ketama",
--     table = "orders",               -- default: the map's name; must exist on every cluster
--     database = "postgres",
--     batch = 16,                     -- slots moved together (one write pause each)
--     publish = { file = "/etc/app/shards/orders.json", hosts = { app1, app2 } },
--     -- or publish = { etcd = "http://10.0.0.1:2379", key = "/shards/orders" }
--   }
--
-- Adding a cluster to cluster_set moves the slots the ring gives it: copied,
-- caught up, writes to them refused for a moment, the map flipped and
-- published, both sides verified, then deleted from the source.
local function ident(v) return type(v) == "string" and v:match("^[%a_][%w_]*$") ~= nil end

return function(name, helpers)
  return function(cfg)
    -- level 3: fail's caller is this function, whose caller is the user's line
    local function fail(msg) error("shard_map '" .. name .. "': " .. msg, 3) end
    if type(cfg) ~= "table" then fail("expected a table { ... }") end
    if helpers and helpers.check_keys then
      local what = "shard_map '" .. name .. "'"
      helpers.check_keys(cfg, what, { "cluster_set", "slots", "key", "hash", "table", "database", "batch",
                                      "publish", "depends_on" })
      if type(cfg.publish) == "table" then
        helpers.check_keys(cfg.publish, what .. ": publish", { "file", "hosts", "etcd", "key" })
      end
    end
    local set = cfg.cluster_set
    if type(set) ~= "table" or #set == 0 then
      fail("'cluster_set' (at least one postgres_cluster: cluster_set = { db_a, db_b }) is required")
    end
    local clusters, deps, seen = {}, {}, {}
    for i, c in ipairs(set) do
      if type(c) ~= "table" or not c.members or not c.name then
        fail("unknown cluster " .. (type(c) == "string" and "'" .. c .. "'" or "(a " .. type(c) .. ")") ..
             " in cluster_set (entry " .. i .. "): use what postgres_cluster returned, cluster_set = { db_a, db_b }")
      end
      if seen[c.name] then fail("cluster '" .. c.name .. "' is twice in cluster_set") end
      seen[c.name] = true
      clusters[#clusters + 1] = { name = c.name, members = c.members, rw = c.rw, ro = c.ro }
      for _, n in ipairs(c.nodes or {}) do deps[#deps + 1] = n end
    end
    -- a resource is a table with a metatable (any index gives a reference): only a plain list is walked
    if cfg.depends_on ~= nil and (type(cfg.depends_on) ~= "table" or getmetatable(cfg.depends_on)) then
      fail("depends_on must be a list of resources: depends_on = { m }")
    end
    for _, d in ipairs(cfg.depends_on or {}) do deps[#deps + 1] = d end
    local slots = cfg.slots or 1024
    if type(slots) ~= "number" or slots % 1 ~= 0 or slots <= 0 or slots > 65536 then
      fail("slots must be a whole number > 0 (at most 65536), not '" .. tostring(slots) .. "'")
    end
    if cfg.key == nil then fail("'key' (the column that places a row, key = \"customer_id\") is required") end
    if not ident(cfg.key) then fail("key '" .. tostring(cfg.key) .. "' is not a column name") end
    local tbl = cfg.table or name
    if not ident(tbl) then fail("table '" .. tostring(tbl) .. "' is not a table name (set table = \"...\")") end
    if (cfg.hash or "ketama") ~= "ketama" then
      fail("hash '" .. tostring(cfg.hash) .. "' is not supported: hash = \"ketama\" is the only choice")
    end
    local batch = cfg.batch or 16
    if type(batch) ~= "number" or batch % 1 ~= 0 or batch < 1 then
      fail("batch must be a whole number >= 1, not '" .. tostring(batch) .. "'")
    end
    local pub = cfg.publish
    if pub ~= nil then
      if type(pub) ~= "table" or (pub.file == nil and pub.etcd == nil) then
        fail("publish = { file = PATH, hosts = {...} } or { etcd = ENDPOINTS, key = KEY }")
      end
      if pub.etcd ~= nil and type(pub.key) ~= "string" then fail("publish.etcd needs key = \"/shards/" .. name .. "\"") end
      if pub.hosts ~= nil then
        for _, h in ipairs(pub.hosts) do
          if type(h) ~= "table" or not h.address then fail("publish.hosts must be hosts") end
        end
      end
    end
    return resource "db.shard_map" (name) {
      name = name, clusters = clusters, slots = slots, key = cfg.key, table = tbl, hash = "ketama",
      database = cfg.database, batch = batch, publish = pub, depends_on = deps,
    }
  end
end
