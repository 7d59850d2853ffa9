-- app_pool: N instances of an application in two colours, blue and green.
--
--   local pool = app_pool "web" {
--     hosts     = hosts { role = "app" },  -- omit: every instance on this machine
--     instances = 2,                       -- per colour, on this machine; or
--                                          -- lxd_instances { image = ..., ... }: LXD
--                                          -- containers iac creates (modules/lxd_instances.lua)
--     colours   = "ports",                 -- "ports": both colours on each host,
--                                          -- "hosts": first half blue, second half green
--     address   = "127.0.0.1",             -- this machine only
--     base_port = 18001, green_offset = 100,
--     files     = { ["/srv/app/{name}.conf"] = "listen {address}:{port}\nversion {version}\n" },
--     start     = "app -c /srv/app/{name}.conf", pidfile = "/run/app-{name}.pid",
--     stop      = nil,                     -- default: TERM to the pid, KILL after 5 s
--     vars      = { dir = "/srv/app" },    -- more {placeholders}
--     autoscale = { min = 2, max = 8, metric = "haproxy_scur_per_server", target = 20,
--                   -- or "haproxy_rate_per_server" (requests/s per server), "cpu", PromQL
--                   tolerance = 0.1, scale_up = { max_step = 2, period = "15s" },
--                   scale_down = { stabilization = "60s", max_step = 1 } },
--   }
--
-- With autoscale, each colour has `min` instances that deployments run and
-- HAProxy's config lists, and `max - min` spares (the next hosts of
-- `hosts`, standby hosts; or the next ports on this machine) that
-- `iac autoscale` starts and adds to HAProxy at runtime (docs/autoscale.md).
--
-- {version} {port} {colour} {name} {address} and vars are filled in when a
-- colour is (re)started at a version. The pool is plain data: the
-- deployment (modules/deployment.lua) runs it, the HAProxy module routes to it.
return function(name)
  return function(cfg)
    assert(type(cfg) == "table", "app_pool '" .. name .. "': expected a table { ... }")
    if not cfg.start then error("app_pool '" .. name .. "': 'start' (a command) is required", 2) end
    local base, off = cfg.base_port or 18001, cfg.green_offset or 100
    local instances, spares = {}, {}
    local as = cfg.autoscale
    local amin, amax
    if as ~= nil then
      if type(as) ~= "table" then error("app_pool '" .. name .. "': autoscale must be a table { min = ..., max = ... }", 2) end
      amin, amax = as.min or 1, as.max or as.min or 1
      if math.type(amin) ~= "integer" or math.type(amax) ~= "integer" or amin < 1 or amax < amin then
        error("app_pool '" .. name .. "': autoscale needs whole numbers min >= 1 and max >= min", 2)
      end
      if cfg.colours == "hosts" then
        error("app_pool '" .. name .. "': autoscale needs colours = \"ports\" (each standby host runs either colour)", 2)
      end
    end
    local function add(colour, i, host, address, port)
      local list = (as and i > amin) and spares or instances
      list[#list + 1] = {
        name = colour .. i, colour = colour, host = host, address = address, port = port,
      }
    end
    local lxd = type(cfg.instances) == "table" and cfg.instances.kind == "lxd_instances" and cfg.instances or nil
    if type(cfg.instances) == "table" and not lxd then
      error("app_pool '" .. name .. "': instances must be a number or lxd_instances { ... }", 2)
    end
    if lxd then
      if cfg.hosts then error("app_pool '" .. name .. "': give hosts or instances = lxd_instances { ... }, not both", 2) end
      if cfg.colours == "hosts" then error("app_pool '" .. name .. "': lxd_instances needs colours = \"ports\"", 2) end
      local prefix = lxd.prefix or (name:gsub("[^%w%-]", "-") .. "-")
      local function inst_spec(lxdname)
        return { name = lxdname, image = lxd.image, profiles = lxd.profiles, limits = lxd.limits, config = lxd.config,
                 ssh_key = lxd.ssh_key, ssh_port = lxd.ssh_port, wait_timeout = lxd.wait_timeout }
      end
      local nbase = as and amin or (lxd.count or 1)
      for i = 1, nbase do
        local inst = resource "lxd.instance" (name .. "_" .. i) (inst_spec(prefix .. i))
        local h = host (prefix .. i) { address = inst.address }
        add("blue", i, h, h.address, base)
        add("green", i, h, h.address, base + off)
      end
      -- spares: a container each, made by `iac autoscale` when it needs one
      for i = nbase + 1, (as and amax or nbase) do
        for _, colour in ipairs { "blue", "green" } do
          spares[#spares + 1] = { name = colour .. i, colour = colour, port = colour == "blue" and base or base + off,
                                  lxd = inst_spec(prefix .. colour .. i) }
        end
      end
    elseif cfg.hosts and #cfg.hosts > 0 then
      local mode = cfg.colours or "ports"
      if mode == "hosts" then
        local half = #cfg.hosts // 2
        if half == 0 then error("app_pool '" .. name .. "': colours = \"hosts\" needs at least 2 hosts", 2) end
        for i = 1, half do
          add("blue", i, cfg.hosts[i], cfg.hosts[i].address, base)
          add("green", i, cfg.hosts[half + i], cfg.hosts[half + i].address, base)
        end
      elseif mode == "ports" then
        if as and #cfg.hosts < amax then
          error("app_pool '" .. name .. "': autoscale.max is " .. amax .. " but hosts gives " .. #cfg.hosts
            .. " (one host per instance)", 2)
        end
        for i, h in ipairs(cfg.hosts) do
          if as and i > amax then break end
          add("blue", i, h, h.address, base)
          add("green", i, h, h.address, base + off)
        end
      else
        error("app_pool '" .. name .. "': colours must be \"ports\" or \"hosts\"", 2)
      end
    else
      local addr = cfg.address or "127.0.0.1"
      local n = cfg.instances or 1
      if as then
        n = amax
        if off < n then error("app_pool '" .. name .. "': green_offset must be at least autoscale.max", 2) end
      end
      for i = 1, n do
        add("blue", i, nil, addr, base + i - 1)
        add("green", i, nil, addr, base + off + i - 1)
      end
    end
    return {
      name = name, instances = instances, spares = as and spares or nil, autoscale = as,
      files = cfg.files, start = cfg.start,
      stop = cfg.stop, pidfile = cfg.pidfile, vars = cfg.vars, start_timeout = cfg.start_timeout,
    }
  end
end
