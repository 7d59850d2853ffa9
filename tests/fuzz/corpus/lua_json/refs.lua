-- references, templates and sensitive values as the DSL hands them out
local conf = resource("local.file.conf")
local sha = ref("local.file.conf", "sha256")
local tpl = "version=" .. sha .. "\n"
local token = sensitive("s3cr3t-token")
return { content = tpl, triggers = { conf = sha, token = token }, header = "Bearer " .. token },
       { conf, module("module.web", { url = "http://10.0.0.2" }) }, sha
