-- prelude of the flags provider: the `flag` keyword. Its bodies land in the
-- configuration's "flags" section, which the provider turns into flags.file
-- and flags.etcd resources after main.lua ran.
local env, require, iac = ...
local declare = iac.section("flags", "flag")

-- deliver = { file = { host = lb } } with lb from the haproxy module means
-- that HAProxy's host; a module result without a host means none
local function host_of(t)
  if type(t) == "table" and t.host ~= nil and t.address == nil then return t.host end
  if type(t) == "table" and t.api ~= nil and t.address == nil then return nil end
  return t
end

env.flag = function(name)
  return function(body)
    local d = type(body) == "table" and body.deliver
    local f = type(d) == "table" and d.file
    if type(f) == "table" then
      if f.path then f.host = host_of(f.host) else for _, t in ipairs(f) do t.host = host_of(t.host) end end
    end
    return declare(name)(body)
  end
end
