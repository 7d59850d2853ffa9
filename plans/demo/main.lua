-- plans/demo: a small site on this machine, no SSH needed.
-- iac -chdir=plans/demo apply -var version=v2   (see plans/demo/run)
variable "version" { default = "v1", description = "application version" }
variable "root" { default = "/tmp/iac-demo", description = "where the demo puts its files" }

local conf = resource "local.file" "conf" {
  path = var.root .. "/app.conf",
  content = "version=" .. var.version .. "\nlisten=127.0.0.1:18081\n",
}
for i = 1, 3 do
  resource "local.file" ("page" .. i) {
    path = var.root .. "/www/page" .. i .. ".html",
    content = "<h1>page " .. i .. " of " .. var.version .. "</h1>\n",
  }
end
resource "local.exec" "reload" {
  create = "echo reloaded $(date +%T) >> " .. var.root .. "/reload.log",
  destroy = "rm -f " .. var.root .. "/reload.log",
  check = "test -f " .. var.root .. "/reload.log",
  triggers = { conf = conf.sha256 },
}
output "conf" { value = conf.path }
