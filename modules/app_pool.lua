-- app_pool: N instances of an application in two colours, blue and green.
--
--   local pool = app_pool "web" {
--     hosts     = hosts { role = "app" },  -- omit: every instance on this machine
--     instances = 2,                       -- per colour, on this machine
--     colours   = "ports",                 -- "ports": both colours on each host,
--                                          -- "hosts": first half blue, second half green
--     address   = "127.0.0.1",             -- this machine only
--     base_port = 18001, green_offset = 100,
--     files     = { ["/srv/app/{name}.conf"] = "listen {address}:{port}\nversion {version}\n" },
--     start     = "app -c /srv/app/{name}.conf", pidfile = "/run/app-{name}.pid",
--     stop      = nil,                     -- default: TERM to the pid, KILL after 5 s
--     vars      = { dir = "/srv/app" },    -- more {placeholders}
--   }
--
-- {version} {port} {colour} {name} {address} and vars are filled in when a
-- colour is (re)started at a version. The pool is plain data: the
-- deployment (modules/deployment.lua) runs it, the HAProxy module routes to it.
return function(name)
  return function(cfg)
    assert(type(cfg) == "table", "app_pool '" .. name .. "': expected a table { ... }")
    if not cfg.start then error("app_pool '" .. name .. "': 'start' (a command) is required", 2) end
    local base, off = cfg.base_port or 18001, cfg.green_offset or 100
    local instances = {}
    local function add(colour, i, host, address, port)
      instances[#instances + 1] = {
        name = colour .. i, colour = colour, host = host, address = address, port = port,
      }
    end
    if cfg.hosts and #cfg.hosts > 0 then
      local mode = cfg.colours or "ports"
      if mode == "hosts" then
        local half = #cfg.hosts // 2
        if half == 0 then error("app_pool '" .. name .. "': colours = \"hosts\" needs at least 2 hosts", 2) end
        for i = 1, half do
          add("blue", i, cfg.hosts[i], cfg.hosts[i].address, base)
          add("green", i, cfg.hosts[half + i], cfg.hosts[half + i].address, base)
        end
      elseif mode == "ports" then
        for i, h in ipairs(cfg.hosts) do
          add("blue", i, h, h.address, base)
          add("green", i, h, h.address, base + off)
        end
      else
        error("app_pool '" .. name .. "': colours must be \"ports\" or \"hosts\"", 2)
      end
    else
      local addr = cfg.address or "127.0.0.1"
      for i = 1, cfg.instances or 1 do
        add("blue", i, nil, addr, base + i - 1)
        add("green", i, nil, addr, base + off + i - 1)
      end
    end
    return {
      name = name, instances = instances, files = cfg.files, start = cfg.start,
      stop = cfg.stop, pidfile = cfg.pidfile, vars = cfg.vars, start_timeout = cfg.start_timeout,
    }
  end
end
