local function colour(name, version, weight)
  return { name = name, version = version, weight = weight,
           health = { path = "/health", expect = 200, interval = "500ms", healthy = 3 },
           analysis = { duration = "30s", max_error_rate = 0.01, max_p99_ms = 250 } }
end
local lb = host { name = "lb", address = "10.0.0.2", user = "deploy" }
return { app = "shop", lb = lb, colours = { colour("blue", "v1", 100), colour("green", "v2", 0) },
         haproxy = { backend = "app", socket = "/run/haproxy/admin.sock" } }
