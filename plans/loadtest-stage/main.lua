-- A load test as a deployment stage, required in staging and skipped in
-- production: the same topology, one variable.
--
--   iac plan -var env=staging -var version=v2   # ... load test smoke.lua on green at 200/s for 30s
--   iac plan -var env=prod    -var version=v2   # ... analysis on green (the built-in probe only)
--
-- Hosts are placeholders: point them at your machines (or the test bed's,
-- tests/deploy/test_loadtest_gate.sh runs the same stage there).
variable "env" { default = "staging", description = "staging: a load test before every switch; prod: none" }
variable "version" { default = "v1" }

local lb1 = host "lb1" { address = "10.0.0.2" }
for i = 1, 2 do
  host("app" .. i) { address = "10.0.0." .. (2 + i), labels = { role = "app" } }
end

local pool = app_pool "web" {
  hosts = hosts { role = "app" }, colours = "ports", base_port = 8001, green_offset = 100,
  start = "/srv/web/bin/web --listen {address}:{port} --version {version}",
  pidfile = "/run/web-{name}.pid",
}
local lb = haproxy "lb" { host = lb1, bind = "0.0.0.0:80", pool = pool }

local analysis = { duration = "30s", max_error_rate = 0.01, max_p99 = "300ms" }
if var.env ~= "prod" then
  analysis.loadtest, analysis.rate = "smoke.lua", 200   -- the scenario decides with its thresholds
end

deployment "web" {
  version = var.version, pool = pool, lb = lb,
  health = { path = "/health", expect = 200, healthy = 3, timeout = "30s" },
  analysis = analysis,
}
