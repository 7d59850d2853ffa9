-- plans/demo: blue/green on this machine, no SSH. HAProxy on 127.0.0.1,
-- two colours of a tiny web app (nginx instances that answer / with their
-- version and /health), one feature flag. Walk through it: plans/demo/run
variable "version" { default = "v1", description = "application version to run" }
variable "lb_port" { default = 18080, description = "HAProxy listens on 127.0.0.1:<lb_port>" }
variable "root"    { default = "/tmp/iac-demo", description = "where instances keep their files" }

local pool = app_pool "web" {
  instances = 2, address = "127.0.0.1", base_port = var.lb_port + 1, green_offset = 10,
  vars = { root = var.root },
  files = {
    ["{root}/{name}/nginx.conf"] = [[
daemon on; worker_processes 1; pid {root}/{name}/nginx.pid; error_log {root}/{name}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path {root}/{name}/tmp; proxy_temp_path {root}/{name}/tmp;
  fastcgi_temp_path {root}/{name}/tmp; uwsgi_temp_path {root}/{name}/tmp; scgi_temp_path {root}/{name}/tmp;
  server {
    listen {address}:{port};
    default_type text/plain;
    location = /health { return 200 "ok\n"; }
    location / { return 200 "{version} from {name}\n"; }
  }
}
]],
  },
  start = "mkdir -p {root}/{name}/tmp && nginx -p {root}/{name} -c {root}/{name}/nginx.conf -e {root}/{name}/error.log",
  pidfile = "{root}/{name}/nginx.pid",
}

local lb = haproxy "lb" {
  bind = "127.0.0.1:" .. var.lb_port, pool = pool,
  health = { path = "/health", interval = "100ms", rise = 2, fall = 2 },
}

deployment "web" {
  strategy = "blue_green", version = var.version, pool = pool, lb = lb,
  health   = { path = "/health", expect = 200, interval = "200ms", healthy = 3, timeout = "20s" },
  analysis = { duration = "2s", max_error_rate = 0.01, max_p99 = "300ms" },
  scale_down_delay = "5m", flags_on_rollback = { checkout_v2 = "off" },
}

output "url" { value = "http://127.0.0.1:" .. var.lb_port .. "/" }

flag "checkout_v2" {
  kind = "release", variants = { on = true, off = false }, default = "off",
  rollout = { on = 10 }, targeting_key = "userId",
  deliver = { file = { host = lb, path = var.root .. "/flags.json" } },
}
