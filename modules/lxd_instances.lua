-- lxd_instances: where an app_pool's instances come from when they are
-- LXD containers that iac creates, rather than hosts that exist already.
--
--   app_pool "web" {
--     instances = lxd_instances { image = "app-base", profiles = { "app" },
--                                 limits = { cpu = 1, memory = "256MB" },
--                                 ssh_key = file("id_ed25519.pub"),
--                                 prefix = "web-",   -- LXD names: web-1, web-2, web-blue3...
--                                 count = 2 },       -- without autoscale: instances per pool
--     autoscale = { min = 2, max = 8, ... },
--     ...
--   }
--
-- The pool's first instances (count, or autoscale.min) are lxd.instance
-- resources of the configuration, created by apply like any other, each a
-- host for the pool's files and commands once its address is known. With
-- autoscale, the spares (up to autoscale.max) do not exist until `iac
-- autoscale` needs them: it creates a container per spare, starts the app
-- on it at the live version, health-gates it, adds it to HAProxy, and
-- deletes the container when it scales in (docs/autoscale.md). The
-- provider "lxd" block's client_key must then be a file name: `iac
-- autoscale` runs without main.lua's variables, and state keeps no secret.
--
-- Plain data: the result is read by app_pool.
local KEYS = { image = true, profiles = true, limits = true, config = true, ssh_key = true, prefix = true,
  count = true, ssh_port = true, wait_timeout = true }

return function(cfg)
  if type(cfg) ~= "table" then error("lxd_instances: expected a table { image = ..., ... }", 2) end
  for k in pairs(cfg) do
    if not KEYS[k] then error("lxd_instances: unknown key '" .. tostring(k) .. "'", 2) end
  end
  if type(cfg.image) ~= "string" or cfg.image == "" then error("lxd_instances: 'image' (an alias or fingerprint) is required", 2) end
  if cfg.prefix ~= nil and (type(cfg.prefix) ~= "string" or not cfg.prefix:match("^%a[%w%-]*$") or #cfg.prefix > 40) then
    error("lxd_instances: 'prefix' must start with a letter and hold only letters, digits and '-' (at most 40)", 2)
  end
  if cfg.count ~= nil and (math.type(cfg.count) ~= "integer" or cfg.count < 1) then
    error("lxd_instances: 'count' must be a whole number >= 1", 2)
  end
  local spec = { kind = "lxd_instances" }
  for k, v in pairs(cfg) do spec[k] = v end
  return spec
end
