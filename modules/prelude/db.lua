-- prelude of the db provider: the `postgres_cluster` and `migration`
-- keywords, which load their modules on first use; the modules get the
-- loader's helpers (check_keys) for their settings.
local env, require, helpers = ...
env.postgres_cluster = function(name) return require("postgres_cluster")(name, helpers) end
env.migration = function(name) return require("migration")(name, helpers) end
env.shard_map = function(name) return require("shard_map")(name, helpers) end
env.partitions = function(name) return require("partitions")(name, helpers) end
env.maintenance = function(name) return require("maintenance")(name, helpers) end
env.lag_gate = function(name) return require("lag_gate")(name, helpers) end
