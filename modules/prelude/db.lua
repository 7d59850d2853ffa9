-- prelude of the db provider: the `postgres_cluster` and `migration`
-- keywords, which load their modules on first use.
local env, require = ...
env.postgres_cluster = function(...) return require("postgres_cluster")(...) end
env.migration = function(...) return require("migration")(...) end
