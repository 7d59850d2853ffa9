/* instance: lxd.instance, a container made from an image, started, and
 * reachable at its eth0 IPv4 address once running:
 *   POST /1.0/instances, then PUT /1.0/instances/NAME/state {start};
 *   root's authorized_keys through /1.0/instances/NAME/files;
 *   profiles and limits changed by PUT with If-Match (the ETag as read);
 *   stopped behind iac's back: status "Stopped" in the plan, started again. */
#include "providers/lxd/lxd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

static const iac_attr instance_attrs[] = {
	{ "provider", IAC_T_STRING, IAC_A_NO_DIFF, "which provider \"lxd\" \"NAME\" block serves it (default: the unnamed one)" },
	{ "name", IAC_T_STRING, IAC_A_FORCE_NEW, "the instance's name in LXD (default: the resource's name)" },
	{ "image", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "an image alias or fingerprint on the server" },
	{ "profiles", IAC_T_LIST, 0, "profiles applied in order (default { \"default\" })" },
	{ "limits", IAC_T_MAP, 0, "{ cpu = 1, memory = \"256MB\" }: LXD's limits.* keys" },
	{ "config", IAC_T_MAP, 0, "other instance config keys (\"user.role\" = \"web\")" },
	{ "ssh_key", IAC_T_STRING, 0, "a public key written to root's ~/.ssh/authorized_keys" },
	{ "ssh_port", IAC_T_NUMBER, IAC_A_NO_DIFF, "with ssh_key: create/start waits until this port accepts (default 22; 0: no wait)" },
	{ "wait_timeout", IAC_T_STRING, IAC_A_NO_DIFF, "how long create/start waits for the address, and the SSH port (default \"30s\")" },
	{ "status", IAC_T_STRING, 0, "\"Running\" (default) or \"Stopped\"; the instance is started or stopped to match" },
	{ "address", IAC_T_STRING, IAC_A_COMPUTED, "the IPv4 address of eth0 once running" },
	{ NULL, 0, 0, NULL },
};

/* How long a started container may take to get its address by DHCP, and
 * its sshd to listen, unless wait_timeout says otherwise. */
#define ADDRESS_WAIT_MS 30000

static double wait_ms(const json_t *a)
{
	double ms = ADDRESS_WAIT_MS;
	const char *t = iac_json_str(a, "wait_timeout");
	if (t && iac_duration_parse(&ms, t) < 0)
		ms = ADDRESS_WAIT_MS;   /* plan refused it already */
	return ms;
}

/* LXD refuses these only when the instance is created, half-way through an
 * apply: say it at plan time. cpu: a count (a number >= 1, or "2") or a set
 * ("0-1", "0,2"); memory: a size ("256MB", "1GiB", "512kB") or a share
 * ("50%"). */
static int check_limit_values(const json_t *lim)
{
	const json_t *cpu = json_object_get(lim, "cpu"), *mem = json_object_get(lim, "memory");
	const char *cs = json_string_value(cpu);
	if (cpu && !(json_is_integer(cpu) && json_integer_value(cpu) >= 1) &&
	    !(cs && *cs && strspn(cs, "0123456789,-") == strlen(cs) && strcmp(cs, "0"))) {
		char *shown = json_dumps(cpu, JSON_ENCODE_ANY);
		iac_err_set("limits: cpu must be a count of at least 1 (cpu = 2) or a CPU set (\"0-1\"), not %s",
			    shown ? shown : "that");
		free(shown);
		return IAC_ERR;
	}
	if (json_is_number(mem))
		return iac_err_set("limits: memory needs a unit (\"%gMB\", \"1GiB\", \"50%%\"), not the bare number %g",
				   json_number_value(mem), json_number_value(mem));
	if (mem) {
		static const char *const units[] = { "B", "kB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "%", NULL };
		const char *m = json_string_value(mem), *u = m;
		while (u && (isdigit((unsigned char)*u) || *u == '.'))
			u++;
		int ok = m && u > m && !*u;
		for (size_t i = 0; m && u > m && !ok && units[i]; i++)
			ok = !strcmp(u, units[i]);
		if (!ok)
			return iac_err_set("limits: memory must be a size such as \"256MB\", \"1GiB\" or \"50%%\", not '%s'",
					   m ? m : "that");
	}
	return 0;
}

static int instance_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)prior;
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, planned) < 0)
		return IAC_ERR;
	if (!json_object_get(planned, "name")) {
		char *n = lxd_name_of(ctx, planned);
		json_object_set_new(planned, "name", json_string(n));
		free(n);
	}
	if (!json_object_get(planned, "profiles"))
		json_object_set_new(planned, "profiles", json_pack("[s]", "default"));
	const json_t *st = json_object_get(planned, "status");
	if (!st)
		json_object_set_new(planned, "status", json_string("Running"));
	else if (json_is_string(st) && strcmp(json_string_value(st), "Running") &&
		 strcmp(json_string_value(st), "Stopped"))
		return iac_err_set("status '%s' must be \"Running\" or \"Stopped\"", json_string_value(st));
	double ms;
	const char *wt = iac_json_str(planned, "wait_timeout");
	if (wt && iac_duration_parse(&ms, wt) < 0)
		return iac_err_set("wait_timeout '%s' must be a duration such as \"30s\"", wt);
	const json_t *lim = json_object_get(planned, "limits");
	if (json_is_object(lim) && !iac_value_has_unknown(lim)) {
		static const char *const keys[] = { "cpu", "memory", "processes", "cpu.allowance", "memory.swap", NULL };
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)lim, k, v) {
			size_t n = 0;
			while (keys[n] && strcmp(keys[n], k))
				n++;
			if (!keys[n] && !strchr(k, '.')) {
				const char *hint = iac_suggest(k, keys, n);
				return iac_err_set("limits: unknown limit '%s'%s%s%s", k, hint ? "; did you mean '" : "",
						   hint ? hint : "", hint ? "'?" : "");
			}
		}
		if (check_limit_values(lim) < 0)
			return IAC_ERR;
		json_t *s = lxd_config_strings(lim, "limits:");
		if (!s)
			return IAC_ERR;
		json_decref(s);
	}
	return 0;
}

/* The config LXD should hold: limits.* and the declared keys, as strings. */
static json_t *wanted_config(const json_t *a)
{
	json_t *cfg = json_object(), *v;
	const char *k;
	json_t *lim = lxd_config_strings(json_object_get(a, "limits"), "limits:");
	json_t *more = lxd_config_strings(json_object_get(a, "config"), "config:");
	if (!lim || !more) {
		json_decref(lim);
		json_decref(more);
		json_decref(cfg);
		return NULL;
	}
	json_object_foreach(lim, k, v) {
		char *key = iac_xasprintf("limits.%s", k);
		json_object_set(cfg, key, v);
		free(key);
	}
	json_object_update(cfg, more);
	json_decref(lim);
	json_decref(more);
	return cfg;
}

/* A declared map as read back from LXD's config: the keys declared, each
 * in the declared type when the live string says the same thing. */
static json_t *read_map(const json_t *declared, const json_t *config, const char *prefix)
{
	json_t *o = json_object(), *v;
	const char *k;
	json_object_foreach((json_t *)declared, k, v) {
		char *key = iac_xasprintf("%s%s", prefix, k);
		const char *live = iac_json_str(config, key);
		free(key);
		if (!live)
			continue;
		json_t *one = json_pack("{s:O}", k, v);
		json_t *want = lxd_config_strings(one, "");
		json_decref(one);
		if (want && !strcmp(iac_json_str(want, k) ?: "", live))
			json_object_set(o, k, v);
		else
			json_object_set_new(o, k, json_string(live));
		json_decref(want);
	}
	return o;
}

/* The IPv4 address of eth0 in GET .../state metadata, or NULL. */
static const char *eth0_ipv4(const json_t *state)
{
	const json_t *addrs = json_object_get(json_object_get(json_object_get(state, "network"), "eth0"), "addresses");
	json_t *a;
	size_t i;
	json_array_foreach(addrs, i, a)
		if (!strcmp(iac_json_str(a, "family") ?: "", "inet"))
			return iac_json_str(a, "address");
	return NULL;
}

/* /1.0/instances/NAME/SUB. Caller frees. */
static char *inst_path(const char *name, const char *sub)
{
	char *p = lxd_path("instances", name);
	char *path = iac_xasprintf("%s/%s", p, sub);
	free(p);
	return path;
}

static int get_state(json_t **state, lxd_conn *c, const char *name, const volatile int *cancel)
{
	char *path = inst_path(name, "state");
	int rc = lxd_json(state, c, "GET", path, NULL, cancel);
	free(path);
	return rc;
}

/* One pause of a wait: IAC_ETIMEOUT once past end, IAC_ERR when cancelled. */
static int pause_until(const iac_rctx *ctx, double end, const char *name, const char *what)
{
	if (iac_now_ms() > end)
		return IAC_ETIMEOUT;
	if (ctx->cancel && *ctx->cancel)
		return iac_err_set("instance '%s': cancelled while waiting for %s", name, what);
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	return 0;
}

/* A started container gets its address from LXD's DHCP a moment later:
 * wait for it, so that what uses the address (an SSH host) can. */
static int wait_address(json_t **state, lxd_conn *c, const iac_rctx *ctx, const char *name, double ms)
{
	double end = iac_now_ms() + ms;
	for (;;) {
		json_decref(*state);
		*state = NULL;
		if (get_state(state, c, name, ctx->cancel) < 0)
			return IAC_ERR;
		if (eth0_ipv4(*state) || strcmp(iac_json_str(*state, "status") ?: "", "Running"))
			return 0;
		int w = pause_until(ctx, end, name, "its address");
		if (w == IAC_ETIMEOUT)
			return iac_err_set("instance '%s' has no IPv4 address on eth0 %.0fs after it started (is DHCP "
					   "served on its network, and does the image ask for an address?)",
					   name, ms / 1000);
		if (w < 0)
			return w;
	}
}

/* Long only because it maps each live field to its attribute. */
static int instance_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	lxd_conn *c;
	json_t *inst = NULL, *state = NULL;
	*out = NULL;
	if (lxd_conn_for(&c, ctx, prior) < 0)
		return IAC_ERR;
	char *name = lxd_name_of(ctx, prior);
	char *path = lxd_path("instances", name);
	int rc = lxd_json(&inst, c, "GET", path, NULL, ctx->cancel);
	if (rc == IAC_ENOTFOUND) {
		rc = 0;
		goto done;
	}
	if (rc == 0)
		rc = get_state(&state, c, name, ctx->cancel);
	if (rc == IAC_ENOTFOUND) {
		rc = 0;
		goto done;
	}
	if (rc < 0) {
		rc = iac_err_set("cannot read instance '%s': %s", name, iac_err_last());
		goto done;
	}
	json_t *o = json_deep_copy(prior);
	json_object_del(o, "$interrupted");
	const json_t *config = json_object_get(inst, "config");
	json_object_set_new(o, "name", json_string(name));
	json_object_set(o, "profiles", json_object_get(inst, "profiles"));
	if (json_is_object(json_object_get(prior, "limits")))
		json_object_set_new(o, "limits", read_map(json_object_get(prior, "limits"), config, "limits."));
	if (json_is_object(json_object_get(prior, "config")))
		json_object_set_new(o, "config", read_map(json_object_get(prior, "config"), config, ""));
	if (!json_object_get(o, "image")) {
		/* an import: the image it was made from */
		const char *fp = iac_json_str(config, "volatile.base_image");
		if (fp)
			json_object_set_new(o, "image", json_string(fp));
	}
	json_object_set(o, "status", json_object_get(inst, "status"));
	const char *ip = eth0_ipv4(state);
	if (ip)
		json_object_set_new(o, "address", json_string(ip));
	else
		json_object_del(o, "address");
	*out = o;
done:
	json_decref(inst);
	json_decref(state);
	free(path);
	free(name);
	return rc;
}

static int set_state(lxd_conn *c, const iac_rctx *ctx, const char *name, const char *action)
{
	char *path = inst_path(name, "state");
	json_t *body = json_pack("{s:s,s:i,s:b}", "action", action, "timeout", 30, "force", !strcmp(action, "stop"));
	int rc = lxd_json(NULL, c, "PUT", path, body, ctx->cancel);
	json_decref(body);
	free(path);
	return rc;
}

/* root's authorized_keys, through the files API (works while stopped). */
static int push_key(lxd_conn *c, const iac_rctx *ctx, const char *name, const char *key)
{
	char *dir = inst_path(name, "files?path=/root/.ssh");
	char *file = inst_path(name, "files?path=/root/.ssh/authorized_keys");
	static const char *const dir_h[] = { "X-LXD-type: directory", "X-LXD-mode: 0700", "X-LXD-uid: 0",
					     "X-LXD-gid: 0", NULL };
	static const char *const file_h[] = { "X-LXD-type: file", "X-LXD-mode: 0600", "X-LXD-uid: 0",
					      "X-LXD-gid: 0", "X-LXD-write: overwrite", NULL };
	size_t len = strlen(key);
	char *text = iac_xasprintf("%s%s", key, len && key[len - 1] == '\n' ? "" : "\n");
	iac_http_req d = { .method = "POST", .path = dir, .data = "", .len = 0, .headers = dir_h };
	iac_http_req f = { .method = "POST", .path = file, .data = text, .len = strlen(text), .headers = file_h };
	int rc = lxd_call(NULL, NULL, c, &d, ctx->cancel);
	if (rc == 0)
		rc = lxd_call(NULL, NULL, c, &f, ctx->cancel);
	free(text);
	free(dir);
	free(file);
	return rc;
}

/* One TCP connect to ip:port within ms: 1 when it was accepted. */
static int port_open(const char *ip, int port, int ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (!ok) {
		struct pollfd p = { fd, POLLOUT, 0 };
		int err = 0;
		socklen_t el = sizeof(err);
		ok = poll(&p, 1, ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0;
	}
	close(fd);
	return ok;
}

/* An instance given an ssh_key is meant to be an SSH host in the same
 * apply: its address comes a moment before its sshd listens, so wait for
 * the port rather than let the first SSH resource on it fail. */
static int wait_ssh(const iac_rctx *ctx, const json_t *planned, const char *name, const char *ip)
{
	const json_t *p = json_object_get(planned, "ssh_port");
	int port = json_is_number(p) ? (int)json_number_value(p) : 22;
	if (!iac_json_str(planned, "ssh_key") || port <= 0 || !ip)
		return 0;
	double ms = wait_ms(planned), end = iac_now_ms() + ms;
	while (!port_open(ip, port, 500)) {
		int w = pause_until(ctx, end, name, "its SSH port");
		if (w == IAC_ETIMEOUT)
			return iac_err_set("instance '%s' runs at %s, but nothing accepts on port %d %.0fs after it "
					   "started (does the image start an sshd?)", name, ip, port, ms / 1000);
		if (w < 0)
			return w;
	}
	return 0;
}

/* After a create or update: read back what the instance is now. */
static int result(json_t **out, const iac_rctx *ctx, lxd_conn *c, const json_t *planned, const char *name)
{
	json_t *state = NULL;
	int rc = 0;
	if (!strcmp(iac_json_str(planned, "status") ?: "Running", "Running"))
		rc = wait_address(&state, c, ctx, name, wait_ms(planned));
	if (rc < 0) {
		json_decref(state);
		return rc;
	}
	const char *ip = eth0_ipv4(state);
	if (state && wait_ssh(ctx, planned, name, ip) < 0) {
		json_decref(state);
		return IAC_ERR;
	}
	json_t *o = json_deep_copy(planned);
	if (ip)
		json_object_set_new(o, "address", json_string(ip));
	else
		json_object_del(o, "address");
	json_decref(state);
	*out = o;
	return 0;
}

static int instance_remove(const iac_rctx *ctx, const json_t *prior);

/* Every instance iac creates carries the resource's address in this key,
 * so a leftover of a create that failed after LXD made the instance (an
 * operation that outlived operation_timeout, a cleanup that could not
 * delete it, a kill -9) is known for what it is: not in state, made by
 * iac for this very resource. The next create deletes it and makes it
 * again, as Terraform replaces a tainted resource. An instance of that
 * name without the mark is someone else's: never touched. */
#define MADE_BY_KEY "user.iac.resource"

/* POST /1.0/instances; a leftover (see MADE_BY_KEY) in the way is deleted
 * first. LXD refuses a taken name in more than one way ("already exists",
 * "Instance is busy running a "start" operation"), so any refusal is
 * followed by a look at what holds the name. */
static int post_instance(lxd_conn *c, const iac_rctx *ctx, const json_t *planned, const char *name, json_t *body)
{
	int rc = lxd_json(NULL, c, "POST", "/1.0/instances", body, ctx->cancel);
	if (rc == 0)
		return rc;
	char *path = lxd_path("instances", name), *why = iac_xstrdup(iac_err_last());
	json_t *old = NULL;
	const char *mark = NULL;
	if (lxd_json(&old, c, "GET", path, NULL, ctx->cancel) < 0) {
		rc = iac_err_set("%s", why);   /* nothing of that name: LXD's own reason stands */
	} else if (!(mark = iac_json_str(json_object_get(old, "config"), MADE_BY_KEY)) || strcmp(mark, ctx->addr)) {
		rc = iac_err_set("%s: an instance named '%s' exists that this resource did not make: import it "
				 "(iac import %s %s) or delete it", why, name, ctx->addr, name);
	} else if (instance_remove(ctx, planned) < 0) {
		rc = iac_err_set("a leftover of an earlier create that failed is in the way, and cannot be deleted "
				 "yet (%s; %s); apply again once LXD is done with it", why, iac_err_last());
	} else {
		iac_log_warn("%s: deleted the instance '%s' an earlier create had left (it was not in state)",
			     ctx->addr, name);
		rc = lxd_json(NULL, c, "POST", "/1.0/instances", body, ctx->cancel);
	}
	json_decref(old);
	free(why);
	free(path);
	return rc;
}

static int instance_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, planned) < 0)
		return IAC_ERR;
	char *name = lxd_name_of(ctx, planned);
	const char *image = iac_json_str(planned, "image");
	json_t *config = wanted_config(planned);
	int rc = IAC_ERR;
	if (!config)
		goto done;
	json_object_set_new(config, MADE_BY_KEY, json_string(ctx->addr));
	size_t il = strlen(image), hex = strspn(image, "0123456789abcdef");
	json_t *source = json_pack("{s:s,s:s}", "type", "image", il >= 12 && hex == il ? "fingerprint" : "alias", image);
	json_t *body = json_pack("{s:s,s:s,s:o,s:O,s:o}", "name", name, "type", "container", "source", source,
				 "profiles", json_object_get(planned, "profiles"), "config", config);
	rc = post_instance(c, ctx, planned, name, body);
	json_decref(body);
	int made = rc == 0;
	if (rc == 0 && iac_json_str(planned, "ssh_key"))
		rc = push_key(c, ctx, name, iac_json_str(planned, "ssh_key"));
	if (rc == 0 && strcmp(iac_json_str(planned, "status") ?: "Running", "Stopped"))
		rc = set_state(c, ctx, name, "start");
	if (rc == 0)
		rc = result(out, ctx, c, planned, name);
	if (rc < 0 && made) {
		/* not in state after a failed create: delete it, or the next
		 * apply's create would find the name taken */
		char *why = iac_xstrdup(iac_err_last());
		int gone = instance_remove(ctx, planned) == 0;
		iac_err_set("%s%s", why, gone ? " (the instance it had made is deleted again)"
					       : " (the instance it had made could not be deleted yet: the next apply "
						 "deletes it and creates it again)");
		free(why);
	}
done:
	if (rc < 0)
		rc = iac_err_set("cannot create instance '%s': %s", name, iac_err_last());
	free(name);
	return rc;
}

/* profiles, limits and config by PUT of the object as read, with its ETag. */
static int put_config(lxd_conn *c, const iac_rctx *ctx, const char *name, const json_t *prior, const json_t *planned)
{
	char *path = lxd_path("instances", name);
	char *etag = NULL;
	json_t *inst = NULL, *want = wanted_config(planned), *old = wanted_config(prior);
	iac_http_req get = { .method = "GET", .path = path };
	int rc = want && old ? lxd_call(&inst, &etag, c, &get, ctx->cancel) : IAC_ERR;
	if (rc < 0)
		goto done;
	json_t *cfg = json_object_get(inst, "config");
	const char *k;
	json_t *v;
	json_object_foreach(old, k, v) /* keys iac set before and no longer declares */
		if (!json_object_get(want, k))
			json_object_del(cfg, k);
	json_object_update(cfg, want);
	json_object_set(inst, "profiles", json_object_get(planned, "profiles"));
	char *ifm = etag ? iac_xasprintf("If-Match: %s", etag) : NULL;
	const char *hdr[] = { ifm, NULL };
	iac_http_req put = { .method = "PUT", .path = path, .json = inst, .headers = ifm ? hdr : NULL };
	rc = lxd_call(NULL, NULL, c, &put, ctx->cancel);
	if (rc < 0 && strstr(iac_err_last(), "ETag"))
		rc = iac_err_set("instance '%s' was changed by someone else while iac updated it (%s); run plan again",
				 name, iac_err_last());
	free(ifm);
done:
	json_decref(inst);
	json_decref(want);
	json_decref(old);
	free(etag);
	free(path);
	return rc;
}

static int differs(const json_t *a, const json_t *b, const char *key)
{
	return !iac_value_equal(json_object_get(a, key), json_object_get(b, key));
}

static int instance_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, planned) < 0)
		return IAC_ERR;
	char *name = lxd_name_of(ctx, planned);
	int rc = 0;
	if (differs(prior, planned, "profiles") || differs(prior, planned, "limits") || differs(prior, planned, "config"))
		rc = put_config(c, ctx, name, prior, planned);
	if (rc == 0 && iac_json_str(planned, "ssh_key") && differs(prior, planned, "ssh_key"))
		rc = push_key(c, ctx, name, iac_json_str(planned, "ssh_key"));
	const char *want = iac_json_str(planned, "status") ?: "Running";
	if (rc == 0 && strcmp(want, iac_json_str(prior, "status") ?: ""))
		rc = set_state(c, ctx, name, !strcmp(want, "Running") ? "start" : "stop");
	if (rc == 0)
		rc = result(out, ctx, c, planned, name);
	if (rc < 0)
		rc = iac_err_set("cannot update instance '%s': %s", name, iac_err_last());
	free(name);
	return rc;
}

static int instance_remove(const iac_rctx *ctx, const json_t *prior)
{
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, prior) < 0)
		return IAC_ERR;
	char *name = lxd_name_of(ctx, prior);
	char *path = lxd_path("instances", name);
	json_t *inst = NULL;
	int rc = lxd_json(&inst, c, "GET", path, NULL, ctx->cancel);
	if (rc == 0 && strcmp(iac_json_str(inst, "status") ?: "", "Stopped"))
		rc = set_state(c, ctx, name, "stop");
	if (rc == 0)
		rc = lxd_json(NULL, c, "DELETE", path, NULL, ctx->cancel);
	rc = lxd_deleted(rc, "instance", name);
	json_decref(inst);
	free(path);
	free(name);
	return rc;
}

const iac_rtype iac_lxd_instance = {
	.name = "lxd.instance",
	.attrs = instance_attrs,
	.doc = "a container on LXD, made from an image and started; address is its eth0 IPv4",
	.plan = instance_plan,
	.read = instance_read,
	.create = instance_create,
	.update = instance_update,
	.remove = instance_remove,
	.import_attr = "name",
};
