/* ssh.facts: a data source describing a host (OS, arch, CPU count, memory),
 * read with one command. */
#include "providers/ssh/ssh.h"

#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/util.h"

static const iac_attr facts_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED, "the host to describe" },
	{ "hostname", IAC_T_STRING, IAC_A_COMPUTED, "the host's own name (kernel hostname)" },
	{ "os", IAC_T_STRING, IAC_A_COMPUTED, "ID from /etc/os-release: \"debian\", \"ubuntu\"..." },
	{ "os_version", IAC_T_STRING, IAC_A_COMPUTED, "VERSION_ID from /etc/os-release" },
	{ "kernel", IAC_T_STRING, IAC_A_COMPUTED, "kernel release (uname -r)" },
	{ "arch", IAC_T_STRING, IAC_A_COMPUTED, "machine (uname -m): \"x86_64\", \"aarch64\"..." },
	{ "cpus", IAC_T_NUMBER, IAC_A_COMPUTED, "online CPUs" },
	{ "memory_mb", IAC_T_NUMBER, IAC_A_COMPUTED, "total memory in MiB" },
	{ "systemd", IAC_T_BOOL, IAC_A_COMPUTED, "true when systemd runs the host" },
	{ NULL, 0, 0, NULL },
};

#define FACTS_CMD \
	"[ -r /etc/os-release ] && . /etc/os-release; " \
	"printf '%s\\n' \"$(cat /proc/sys/kernel/hostname)\" \"${ID:-unknown}\" \"${VERSION_ID:-}\" " \
	"\"$(uname -r)\" \"$(uname -m)\" \"$(getconf _NPROCESSORS_ONLN)\" " \
	"\"$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)\"; " \
	"[ -d /run/systemd/system ] && echo 1 || echo 0"

static int facts_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	iac_ssh_conn *c;
	iac_ssh_result res;
	char *lines[8] = { 0 };
	int n = 0;

	*out = NULL;
	if (iac_ssh_host_conn(&c, ctx, prior) < 0)
		return IAC_ERR;
	if (iac_ssh_run_ok(&res, ctx, c, "reading facts", FACTS_CMD, "read facts", NULL, 0, iac_ssh_timeout(ctx)) < 0) {
		iac_ssh_result_free(&res);
		return IAC_ERR;
	}
	for (char *p = res.out; n < 8 && p && *p; n++) {
		lines[n] = p;
		p = strchr(p, '\n');
		if (p)
			*p++ = '\0';
	}
	if (n < 8) {
		iac_ssh_result_free(&res);
		return iac_err_set("reading facts on %s: unexpected output", iac_ssh_conn_label(c));
	}
	*out = json_deep_copy(prior);
	json_object_set_new(*out, "hostname", json_string(lines[0]));
	json_object_set_new(*out, "os", json_string(lines[1]));
	json_object_set_new(*out, "os_version", json_string(lines[2]));
	json_object_set_new(*out, "kernel", json_string(lines[3]));
	json_object_set_new(*out, "arch", json_string(lines[4]));
	json_object_set_new(*out, "cpus", json_integer(atoll(lines[5])));
	json_object_set_new(*out, "memory_mb", json_integer(atoll(lines[6]) / 1024));
	json_object_set_new(*out, "systemd", json_boolean(lines[7][0] == '1'));
	iac_ssh_result_free(&res);
	return 0;
}

const iac_rtype iac_ssh_facts_type = {
	.name = "ssh.facts",
	.attrs = facts_attrs,
	.is_data = 1,
	.doc = "facts about a host: OS, arch, CPU count, memory",
	.read = facts_read,
	.probe = iac_ssh_probe,
};
