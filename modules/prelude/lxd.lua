-- prelude of the lxd provider: lxd_instances { ... } (modules/lxd_instances.lua)
-- as a global, loaded on first use.
local env, require = ...
env.lxd_instances = function(...) return require("lxd_instances")(...) end
