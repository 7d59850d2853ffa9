-- prelude of the cache provider: the `cache_cluster` keyword
-- (modules/cache_cluster.lua), loaded on first use; the module gets the
-- loader's helpers (check_keys) for its settings.
local env, require, helpers = ...
env.cache_cluster = function(name) return require("cache_cluster")(name, helpers) end
