-- plans/shop: a shop behind HAProxy with a two-level cache, on your hosts
-- over SSH (README.md). One HAProxy host, app hosts running the app pool
-- (plans/shop/app.py, both colours on each host) and a twemproxy each,
-- cache hosts running Redis:
--
--   client -> HAProxy (level 1: HAProxy's cache, /catalog/ pages, keyed by
--             the live colour, emptied by each release)
--          -> app (blue or green) -> twemproxy on its host -> Redis nodes
--             (level 2: the ketama ring iac computes, warmed on join)
--
-- iac apply -var lb=10.0.0.2 -var apps=10.0.0.3,10.0.0.4 -var caches=10.0.0.5,10.0.0.6
-- iac apply -var version=v2 ...     # blue/green release; level 1 starts empty
-- iac status cache catalog          # both levels' hit rates, then per node
variable "version"     { default = "v1", description = "the app's release" }
variable "lb"          { description = "address of the HAProxy host" }
variable "apps"        { description = "addresses of the app hosts, comma separated" }
variable "caches"      { description = "addresses of the cache hosts, comma separated" }
variable "user"        { default = "root" }
variable "ssh_key"     { default = "~/.ssh/id_ed25519" }
variable "known_hosts" { default = "~/.ssh/known_hosts" }
variable "python"      { default = "python3", description = "the Python 3 on the app hosts" }

provider "ssh" { user = var.user, private_key = var.ssh_key, known_hosts = var.known_hosts, connect_timeout = "10s" }

local function each(list, role, prefix)
  local n = 0
  for a in string.gmatch(list, "[^,%s]+") do
    n = n + 1
    host(prefix .. n) { address = a, labels = { role = role } }
  end
  if n == 0 then error("plans/shop: no " .. role .. " hosts given", 2) end
end
local lb1 = host "lb1" { address = var.lb, labels = { role = "lb" } }
each(var.apps, "app", "app")
each(var.caches, "cache", "cache")

local pool = app_pool "shop" {
  hosts = hosts { role = "app" }, colours = "ports", base_port = 8001, green_offset = 100,
  files = { ["/srv/shop/{name}/app.py"] = file("app.py") },
  start = var.python .. " /srv/shop/{name}/app.py --listen {address}:{port} --version {version} --colour {colour}"
    .. " --name {name} --cache {address}:22121 --pidfile /srv/shop/{name}/app.pid"
    .. " > /srv/shop/{name}/app.log 2>&1 < /dev/null",
  pidfile = "/srv/shop/{name}/app.pid",
}

local lb = haproxy "lb" {
  host = lb1, bind = "0.0.0.0:80", pool = pool,
  health = { path = "/health", interval = "100ms", rise = 2, fall = 2 },
  -- level 1: catalog pages for up to 30 s (the app's max-age), per colour
  cache = { size_mb = 64, max_age = "30s", paths = { "/catalog/" }, release = var.version },
}

cache_cluster "catalog" {
  engine = "redis", hosts = hosts { role = "cache" }, per_host = 1, memory = "64mb", policy = "allkeys-lru",
  proxy = { hosts = hosts { role = "app" }, port = 22121 },
  publish = { file = { hosts = hosts { role = "app" }, path = "/etc/shop/cache-ring.json" } },
  classes = { catalog = { ttl = "10m", jitter = 0.1, namespace_by = "release" } },
  warm = { on_join = true, max_time = "30s" },
  l1 = lb,   -- iac status cache catalog reports both levels
}

deployment "shop" {
  strategy = "blue_green", version = var.version, pool = pool, lb = lb,
  health   = { path = "/health", expect = 200, interval = "200ms", healthy = 3, timeout = "20s" },
  analysis = { duration = "2s", max_error_rate = 0.01 },
  scale_down_delay = "10m",
}

output "url" { value = "http://" .. var.lb .. "/catalog/1" }
