-- smoke.lua: what every release must take before it gets traffic. Paths are
-- relative: the deployment aims them at each instance of the idle colour
-- (`iac loadtest smoke.lua -target http://HOST:PORT` does the same by hand).
scenario "home" { path = "/" }
scenario "health" { path = "/health" }
load { executor = "constant-vus", vus = 8, duration = "30s" }
thresholds { http_req_failed = "rate<0.01", ["p(99)"] = "< 300ms" }
