-- prelude of the db provider: the `postgres_cluster` keyword, which loads
-- modules/postgres_cluster.lua on first use.
local env, require = ...
env.postgres_cluster = function(...) return require("postgres_cluster")(...) end
