-- prelude of the cache provider: the `cache_cluster` keyword
-- (modules/cache_cluster.lua), loaded on first use.
local env, require = ...
env.cache_cluster = function(...) return require("cache_cluster")(...) end
