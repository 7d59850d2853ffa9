-- a topology-style value: nested tables, lists, numbers, booleans
local hosts = {}
for i = 1, 3 do
  hosts[#hosts + 1] = { name = "web" .. i, address = "10.0.0." .. (10 + i), port = 22,
                        labels = { role = "web", zone = (i % 2 == 0) and "b" or "a" } }
end
return { hosts = hosts, replicas = #hosts, ratio = 0.25, enabled = true,
         ports = { 80, 443 }, env = { APP_ENV = "prod", WORKERS = "4" } }
