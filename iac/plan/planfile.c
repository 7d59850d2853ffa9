/* planfile: saved plans (see planfile.h). */
#include "iac/plan/planfile.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/plan/render.h"

static json_t *actions_of(const iac_plan *plan)
{
	json_t *a = json_object();
	for (size_t i = 0; i < plan->n; i++)
		if (plan->changes[i].action != IAC_ACT_NOOP)
			json_object_set_new(a, plan->changes[i].addr,
					    json_string(iac_action_name(plan->changes[i].action)));
	return a;
}

/* The key of the sensitive variables' HMACs: 32 random bytes in
 * .iac/plan.key (0600, made on first use). It is not in the plan, so a plan
 * file passed around (a CI artifact) does not let anyone test guesses of a
 * secret, as a salted hash with the salt beside it would; applying a plan
 * needs the same .iac/, as it needs the same state. */
#define KEY_LEN 32

static int plan_key(unsigned char key[KEY_LEN], const char *cfgdir, int create)
{
	char *dir = iac_path_join(cfgdir, ".iac"), *path = iac_path_join(dir, "plan.key"), *data = NULL;
	size_t len = 0;
	int rc = iac_private_dir(dir, NULL);
	if (rc == 0)
		rc = iac_file_read_flags(&data, &len, NULL, path, O_NOFOLLOW);
	if (rc == IAC_ENOTFOUND && create) {
		if (RAND_bytes(key, KEY_LEN) != 1)
			rc = iac_err_set("cannot make a key for saved plans: no randomness");
		else
			rc = iac_file_write_atomic(path, key, KEY_LEN, 0600);
	} else if (rc == IAC_ENOTFOUND) {
		rc = iac_err_set("'%s' is missing: a saved plan can only be applied where it was made "
				 "(with the same .iac/); make a new plan", path);
	} else if (rc == 0 && len != KEY_LEN) {
		rc = iac_err_set("'%s' is damaged (%zu bytes, not %d): remove it and make a new plan", path, len,
				 KEY_LEN);
	} else if (rc == 0) {
		memcpy(key, data, KEY_LEN);
	}
	free(data);
	free(dir);
	free(path);
	return rc < 0 ? IAC_ERR : 0;
}

/* {"hmac_sha256": hex} of a value's canonical JSON. New reference. */
static json_t *value_mac(const json_t *v, const unsigned char key[KEY_LEN])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t n = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	char *dump = json_dumps(v ? v : json_null(), JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
	if (!dump || !EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, KEY_LEN, (unsigned char *)dump,
				strlen(dump), mac, sizeof(mac), &n))
		n = 0;
	free(dump);
	for (size_t i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	hex[2 * n] = '\0';
	return json_pack("{s:s}", "hmac_sha256", hex);
}

/* The plan as `iac plan` shows it, without colours, for `iac show FILE`
 * (secrets are already "(sensitive)" in it). */
static json_t *rendered(const iac_plan *plan)
{
	iac_buf b = IAC_BUF_INIT, plain = IAC_BUF_INIT;
	iac_plan_render(&b, plan);
	for (const char *p = iac_buf_cstr(&b); *p; p++) {
		if (*p == '\033' && p[1] == '[') {   /* an SGR colour sequence */
			p += 2;
			while (*p && *p != 'm')
				p++;
			if (!*p)
				break;
			continue;
		}
		iac_buf_putc(&plain, *p);
	}
	json_t *text = json_string(iac_buf_cstr(&plain));
	iac_buf_free(&b);
	iac_buf_free(&plain);
	return text ? text : json_null();
}

int iac_planfile_write(const char *path, const iac_plan *plan, iac_config *cfg, const json_t *replace)
{
	unsigned char key[KEY_LEN];
	if (json_object_size(cfg->variables) && plan_key(key, cfg->dir, 1) < 0)
		return IAC_ERR;
	json_t *vars = json_object(), *sens = json_array(), *hashes = json_object(), *v;
	const char *k;

	json_object_foreach(cfg->variables, k, v) {
		if (json_is_true(json_object_get(v, "sensitive"))) {
			json_array_append_new(sens, json_string(k));
			/* the value itself never goes in; its keyed hash lets apply
			 * check it is given the same secret */
			json_t *plain = iac_value_resolve(json_object_get(v, "value"), NULL, NULL, NULL);
			json_object_set_new(hashes, k, value_mac(plain, key));
			json_decref(plain);
		} else if (json_is_true(json_object_get(v, "given"))) {
			/* only values given on the command line / environment /
			 * var files: a default is part of the configuration */
			json_object_set(vars, k, json_object_get(v, "value"));
		}
	}
	json_t *doc = json_pack("{s:s,s:i,s:s,s:s,s:I,s:s,s:b,s:O?,s:O?,s:o,s:o,s:o,s:o}",
				"format", "iac-plan", "format_version", IAC_PLANFILE_FORMAT,
				"iac_version", IAC_VERSION, "lineage", plan->lineage,
				"serial", (json_int_t)plan->serial, "config_hash", iac_config_hash(cfg),
				"destroy", plan->destroy, "targets", plan->targets, "replace", replace,
				"variables", vars, "sensitive_variables", sens, "actions", actions_of(plan),
				"plan", iac_plan_json(plan));
	json_object_set_new(doc, "sensitive_hashes", hashes);
	json_object_set_new(doc, "rendered", rendered(plan));
	if (plan->excludes)
		json_object_set(doc, "exclude", plan->excludes);
	if (plan->limits)
		json_object_set(doc, "limit", plan->limits);
	char *text = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(doc);
	int rc = iac_file_write_atomic(path, text, strlen(text), 0600);
	free(text);
	return rc;
}

/* What is wrong with a plan file's fields, or NULL: checked once here, so
 * nothing later meets a number where it expects a name. */
static const char *plan_problem(const json_t *doc)
{
	if (json_object_get(doc, "exclude") && !iac_value_is_string_list(json_object_get(doc, "exclude")))
		return "'exclude' is not a list of addresses";
	if (json_object_get(doc, "limit") && !iac_value_is_string_list(json_object_get(doc, "limit")))
		return "'limit' is not a list of hosts";
	if (json_object_get(doc, "rendered") && !json_is_string(json_object_get(doc, "rendered")))
		return "'rendered' is not a string";
	const json_t *v;
	const char *k;
	if (!json_is_string(json_object_get(doc, "lineage")))
		return "'lineage' is not a string";
	if (!json_is_integer(json_object_get(doc, "serial")))
		return "'serial' is not a whole number";
	if (!json_is_string(json_object_get(doc, "config_hash")))
		return "'config_hash' is not a string";
	if ((v = json_object_get(doc, "targets")) && !json_is_null(v) && !iac_value_is_string_list(v))
		return "'targets' is not a list of addresses";
	if ((v = json_object_get(doc, "replace")) && !json_is_null(v) && !iac_value_is_string_list(v))
		return "'replace' is not a list of addresses";
	if (!json_is_object(json_object_get(doc, "variables")))
		return "'variables' is not an object";
	if (!iac_value_is_string_list(json_object_get(doc, "sensitive_variables")))
		return "'sensitive_variables' is not a list of names";
	if (!json_is_object(v = json_object_get(doc, "actions")))
		return "'actions' is not an object";
	json_object_foreach((json_t *)v, k, v)
		if (!json_is_string(v))
			return "an entry of 'actions' is not a string";
	if ((v = json_object_get(doc, "sensitive_hashes")) && !json_is_object(v))
		return "'sensitive_hashes' is not an object";
	if (!json_is_object(v = json_object_get(doc, "plan")))
		return "'plan' is not an object";
	if ((v = json_object_get(v, "unreachable_hosts")) && !json_is_array(v))
		return "'plan.unreachable_hosts' is not a list";
	return NULL;
}

int iac_planfile_read(json_t **out, const char *path)
{
	json_error_t jerr;
	*out = NULL;
	json_t *doc = json_load_file(path, 0, &jerr);
	if (!doc)
		return iac_err_set("cannot read plan file '%s': %s", path, jerr.text);
	if (!json_is_object(doc) || strcmp(iac_json_str(doc, "format") ?: "", "iac-plan")) {
		json_decref(doc);
		return iac_err_set("'%s' is not an iac plan file (make one with 'iac plan -out=FILE')", path);
	}
	if (json_integer_value(json_object_get(doc, "format_version")) > IAC_PLANFILE_FORMAT) {
		json_decref(doc);
		return iac_err_set("plan file '%s' was made by a newer iac; upgrade iac", path);
	}
	const char *problem = plan_problem(doc);
	if (problem) {
		iac_err_set("plan file '%s' is damaged: %s; make a new one with 'iac plan -out=FILE'", path, problem);
		json_decref(doc);
		return IAC_ERR;
	}
	*out = doc;
	return 0;
}

json_t *iac_planfile_vars(const json_t *doc)
{
	return json_object_get(doc, "variables");
}

static int host_in(const json_t *list, const char *host)
{
	json_t *w;
	size_t j;
	json_array_foreach(list, j, w)
		if (!strcmp(iac_json_str(w, "host") ?: "", host ? host : ""))
			return 1;
	return 0;
}

/* Hosts that were out when the plan was made must still be out, and the
 * other way round: their resources were planned as left alone. */
static int same_unreachable(const json_t *doc, const iac_plan *fresh)
{
	json_t *then = json_object_get(json_object_get(doc, "plan"), "unreachable_hosts"), *v;
	size_t i;
	json_array_foreach(then, i, v)
		if (!host_in(fresh->unreachable, iac_json_str(v, "host")))
			return iac_err_set("the saved plan left host '%s' out (it was unreachable), and it can be "
					   "reached now; run 'iac plan -out=FILE' again", iac_json_str(v, "host") ?: "");
	json_array_foreach(fresh->unreachable, i, v)
		if (!host_in(then, iac_json_str(v, "host")))
			return iac_err_set("host '%s' is unreachable now (%s), but was not when the plan was made; "
					   "run 'iac plan -out=FILE' again", iac_json_str(v, "host"),
					   iac_json_str(v, "error"));
	return 0;
}

/* Every sensitive variable has the value it had (its HMAC matches). */
static int same_secrets(const json_t *doc, iac_config *cfg)
{
	unsigned char key[KEY_LEN];
	const char *k;
	json_t *v;
	if (json_object_size(json_object_get(doc, "sensitive_hashes")) && plan_key(key, cfg->dir, 0) < 0)
		return IAC_ERR;
	json_object_foreach(json_object_get(doc, "sensitive_hashes"), k, v) {
		json_t *var = json_object_get(json_object_get(cfg->variables, k), "value");
		json_t *plain = var ? iac_value_resolve(var, NULL, NULL, NULL) : NULL;
		json_t *h = plain ? value_mac(plain, key) : NULL;
		int same = h && iac_value_equal(h, v);
		json_decref(plain);
		json_decref(h);
		if (!same)
			return iac_err_set("the sensitive variable '%s' now has a different value than when the plan "
					   "was made; pass the same value, or make a new plan", k);
	}
	return 0;
}

/* The fresh plan does exactly what the saved one said, to the same
 * resources. */
static int same_actions(const json_t *doc, const iac_plan *fresh)
{
	json_t *want = json_object_get(doc, "actions"), *have = actions_of(fresh), *v;
	const char *k;
	int rc = 0;
	json_object_foreach(want, k, v) {
		const char *now = iac_json_str(have, k);
		if (!now || strcmp(now, json_string_value(v)) != 0) {
			rc = iac_err_set("the saved plan no longer holds: '%s' was planned to %s, but would now %s "
					 "(something changed outside iac); run 'iac plan -out=FILE' again",
					 k, json_string_value(v), now ? now : "stay unchanged");
			break;
		}
	}
	json_object_foreach(have, k, v) {
		if (rc)
			break;
		if (!json_object_get(want, k))
			rc = iac_err_set("the saved plan no longer holds: '%s' would now %s, which the plan does "
					 "not include; run 'iac plan -out=FILE' again", k, json_string_value(v));
	}
	json_decref(have);
	return rc;
}

int iac_planfile_check(const json_t *doc, const iac_plan *fresh, iac_config *cfg)
{
	const char *lineage = iac_json_str(doc, "lineage");
	long serial = (long)json_integer_value(json_object_get(doc, "serial"));

	if (!lineage || strcmp(lineage, fresh->lineage) != 0)
		return iac_err_set("the saved plan was made for a different state (lineage %s, this state is %s); "
				   "make a new plan", lineage ? lineage : "?", fresh->lineage), IAC_ECONFLICT;
	if (serial != fresh->serial)
		return iac_err_set("the saved plan is stale: state changed since it was made (serial %ld, now %ld); "
				   "run 'iac plan -out=FILE' again", serial, fresh->serial), IAC_ECONFLICT;
	if (strcmp(iac_json_str(doc, "config_hash") ?: "", iac_config_hash(cfg)) != 0)
		return iac_err_set("the configuration changed since the plan was made; run 'iac plan -out=FILE' again"),
		       IAC_ECONFLICT;
	if (same_unreachable(doc, fresh) < 0 || same_secrets(doc, cfg) < 0 || same_actions(doc, fresh) < 0)
		return IAC_ECONFLICT;
	return 0;
}
