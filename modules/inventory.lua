-- inventory: hosts from a file, with group variables, as an Ansible user
-- keeps them. hosts_from(path) declares every host of the file (as
-- host "name" { ... } would) and returns them in file order.
--
-- INI, Ansible's format (any file not ending in .lua):
--   [web]
--   web1 ansible_host=10.0.0.2
--   web2 ansible_host=10.0.0.3 ansible_port=2222 ansible_user=deploy tier=front
--   [web:vars]
--   role=web
-- ansible_host/_port/_user become address/port/user; every other key=value
-- (the host's own, then its groups' vars) becomes a label; a host's groups
-- are the labels group (the first) and groups ("web,db"), so
-- hosts { group = "web" } selects a group.
--
-- Lua: a file returning { hosts = { web1 = { address = ..., labels = {...} } },
--                         groups = { web = { hosts = { "web1" }, vars = {...} } } }
-- (plain data: it runs with no globals at all).
local M = {}

local function fail(path, line, msg)
  error(path .. (line and (":" .. line) or "") .. ": " .. msg, 0)
end

local function parse_ini(text, path)
  local order, hosts, groups = {}, {}, {}
  local section, kind = nil, nil
  local n = 0
  for raw in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local line = raw:gsub("^%s+", ""):gsub("%s+$", "")
    if line == "" or line:match("^[#;]") then
      -- comment
    elseif line:match("^%[.*%]$") then
      local g, k = line:match("^%[([%w_%-%.]+):?(%a*)%]$")
      if not g or (k ~= "" and k ~= "vars" and k ~= "children") then fail(path, n, "bad section " .. line) end
      section, kind = g, (k == "" and "hosts" or k)
      groups[g] = groups[g] or { hosts = {}, vars = {}, children = {} }
    elseif not section then
      fail(path, n, "a host or variable before the first [group]")
    elseif kind == "vars" then
      local k, v = line:match("^([%w_%.%-]+)%s*=%s*(.-)$")
      if not k then fail(path, n, "expected key=value in [" .. section .. ":vars]") end
      groups[section].vars[k] = v
    elseif kind == "children" then
      groups[section].children[#groups[section].children + 1] = line
    else
      local name, rest = line:match("^([%w_%.%-]+)%s*(.-)$")
      if not name then fail(path, n, "expected a host name") end
      local h = hosts[name]
      if not h then
        h = { vars = {}, groups = {} }
        hosts[name] = h
        order[#order + 1] = name
      end
      for k, v in rest:gmatch("([%w_%.%-]+)=(%S+)") do h.vars[k] = v end
      h.groups[#h.groups + 1] = section
    end
  end
  -- children: hosts of a child group belong to the parent too
  for g, def in pairs(groups) do
    for _, child in ipairs(def.children) do
      if not groups[child] then fail(path, nil, "group '" .. g .. "' lists unknown child group '" .. child .. "'") end
      for _, name in ipairs(order) do
        for _, hg in ipairs(hosts[name].groups) do
          if hg == child then hosts[name].groups[#hosts[name].groups + 1] = g break end
        end
      end
    end
  end
  return order, hosts, groups
end

local function parse_lua(text, path)
  local chunk, err = load(text, "@" .. path, "t", {})
  if not chunk then error(err, 0) end
  local inv = chunk()
  if type(inv) ~= "table" then fail(path, nil, "must return a table { hosts = ..., groups = ... }") end
  local order, hosts, groups = {}, {}, {}
  for name, def in pairs(inv.hosts or {}) do
    order[#order + 1] = name
    local vars = {}
    for k, v in pairs(def) do if k ~= "labels" then vars[k] = v end end
    for k, v in pairs(def.labels or {}) do vars[k] = v end
    hosts[name] = { vars = vars, groups = {} }
  end
  table.sort(order)
  for g, def in pairs(inv.groups or {}) do
    groups[g] = { vars = def.vars or {}, hosts = {} }
    for _, name in ipairs(def.hosts or {}) do
      if not hosts[name] then fail(path, nil, "group '" .. g .. "' lists unknown host '" .. name .. "'") end
      hosts[name].groups[#hosts[name].groups + 1] = g
    end
  end
  return order, hosts, groups
end

local special = { ansible_host = "address", ansible_port = "port", ansible_user = "user",
                  address = "address", port = "port", user = "user" }

function M.hosts_from(path)
  if type(path) ~= "string" then error("hosts_from(path): path must be a string", 2) end
  local text = file(path)
  local order, hosts, groups
  if path:match("%.lua$") then order, hosts, groups = parse_lua(text, path)
  else order, hosts, groups = parse_ini(text, path) end
  local out = {}
  for _, name in ipairs(order) do
    local h = hosts[name]
    local decl, labels = { labels = {} }, {}
    -- group vars first, the host's own win
    for _, g in ipairs(h.groups) do
      for k, v in pairs(groups[g].vars) do labels[k] = v end
    end
    for k, v in pairs(h.vars) do labels[k] = v end
    for k, v in pairs(labels) do
      local field = special[k]
      if field == "port" then decl.port = tonumber(v) or fail(path, nil, "host '" .. name .. "': port '" .. tostring(v) .. "' is not a number")
      elseif field then decl[field] = tostring(v)
      else decl.labels[k] = tostring(v) end
    end
    decl.address = decl.address or name
    if #h.groups > 0 then
      decl.labels.group = h.groups[1]
      decl.labels.groups = table.concat(h.groups, ",")
    end
    out[#out + 1] = host(name)(decl)
  end
  return out
end

return M
