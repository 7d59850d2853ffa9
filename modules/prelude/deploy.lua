-- prelude of the deploy provider: runs once before main.lua with the
-- shared globals, require and the loader's helpers. The shipped modules
-- that read like declarations (deployment "web" { ... }) become globals
-- that load their module on first use.
local env, require = ...
for _, name in ipairs { "deployment", "app_pool", "haproxy" } do
  env[name] = function(...) return require(name)(...) end
end
