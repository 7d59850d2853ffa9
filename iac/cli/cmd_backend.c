/* cmd_backend: the commands about where state lives: `iac init
 * [-migrate-state]`, `iac state pull|push|lock`, `iac force-unlock`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/cli/commands.h"
#include "iac/cli/session.h"
#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/load/modsrc.h"
#include "iac/state/history.h"

static void print_doc(json_t *doc)
{
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
	printf("%s\n", s ? s : "null");
	free(s);
	json_decref(doc);
}

/* `iac state pull`: the state as the backend holds it, on stdout. */
int iac_state_pull(iac_session *s)
{
	if (iac_session_open_state(s, 0) < 0)
		return 1;
	print_doc(iac_state_to_json(s->st));
	return 0;
}

/* What is wrong with pushing doc over st, or NULL. */
static const char *push_problem(char *why, size_t len, const iac_state *st, const json_t *doc)
{
	const char *lin = iac_json_str(doc, "lineage") ?: "";
	long serial = (long)json_integer_value(json_object_get(doc, "serial"));
	if (iac_state_is_new(st))
		return NULL;
	if (strcmp(lin, iac_state_lineage(st))) {
		snprintf(why, len, "it is the state of another configuration (lineage %s, the backend holds %s)", lin,
			 iac_state_lineage(st));
		return why;
	}
	if (serial < iac_state_serial(st)) {
		snprintf(why, len, "its serial %ld is older than the backend's %ld: pushing it would undo the "
			 "changes between them", serial, iac_state_serial(st));
		return why;
	}
	return NULL;
}

/* `iac state push FILE`: replace the backend's state with FILE's, under the
 * lock, after the lineage and serial checks (-force skips them). */
int iac_state_push(iac_session *s, const char *file)
{
	char *text = NULL, why[512];
	size_t len;
	json_error_t jerr;

	if (iac_file_read(&text, &len, file) < 0) {
		iac_session_error(NULL);
		return 1;
	}
	json_t *doc = json_loadb(text, len, 0, &jerr);
	free(text);
	if (!json_is_object(doc)) {
		iac_log_error("%s:%d: not a state document: %s", file, jerr.line, doc ? "not an object" : jerr.text);
		json_decref(doc);
		return 1;
	}
	int rc = 1;
	if (iac_session_open_state(s, 1) < 0)
		goto done;
	const char *problem = push_problem(why, sizeof(why), s->st, doc);
	if (problem && !s->force) {
		iac_log_error("'%s' was not pushed: %s; nothing was changed (-force pushes it anyway)", file, problem);
		goto done;
	}
	if (iac_state_replace(s->st, doc) < 0 || iac_state_flush(s->st) < 0) {
		iac_session_error("the state was not pushed");
		goto done;
	}
	iac_history_add(s->st, json_pack("{s:s,s:s,s:b}", "command", "state push", "file", file, "forced", s->force));
	iac_state_flush(s->st);
	printf("Pushed '%s' to %s: %zu resource(s), serial %ld.\n", file, iac_backend_label(s->be),
	       iac_state_count(s->st), iac_state_serial(s->st));
	rc = 0;
done:
	json_decref(doc);
	return rc;
}

static void print_holder(const char *what, const json_t *h)
{
	printf("%s 'iac %s' by %s@%s (pid %lld) since %s, lock ID %s", what, iac_json_str(h, "command") ?: "?",
	       iac_json_str(h, "user") ?: "?", iac_json_str(h, "host") ?: "?",
	       (long long)json_integer_value(json_object_get(h, "pid")), iac_json_str(h, "started") ?: "?",
	       iac_json_str(h, "id") ?: "?");
	if (json_object_get(h, "ttl"))
		printf(" (lease %llds left)", (long long)json_integer_value(json_object_get(h, "ttl")));
	printf("\n");
}

/* `iac state lock` (and `iac status`): who holds the lock, and who waits. */
int iac_state_lock_status(iac_session *s)
{
	json_t *st = NULL;
	if (iac_session_backend(s, 0) < 0)
		return 1;
	if (iac_backend_lock_status(&st, s->be) < 0) {
		iac_session_error(NULL);
		return 1;
	}
	if (s->json) {
		json_object_set_new(st, "backend", json_string(iac_backend_kind(s->be)));
		print_doc(st);
		return 0;
	}
	printf("State: %s\n", iac_backend_label(s->be));
	json_t *h = json_object_get(st, "holder"), *q;
	size_t i;
	if (json_is_object(h))
		print_holder("Locked by", h);
	else
		printf("Not locked.\n");
	json_array_foreach(json_object_get(st, "queue"), i, q) {
		char what[48];
		snprintf(what, sizeof(what), "  waiting #%zu:", i + 1);
		print_holder(what, q);
	}
	json_decref(st);
	return 0;
}

/* `iac status TOPIC ...` is a provider command's own status: `iac status db
 * main` runs `iac db status main` (the db provider's command), `iac status
 * pool web` runs `iac pool status web` (the deploy provider's); found among
 * the commands that declare a status (never `rollback`), so the engine names
 * no provider. A TOPIC that is none of them is an error with the list. */
static int provider_status(int *rc, int argc, char **argv)
{
	const char *topics[33];
	size_t n = 0;
	if (argc < 2 || argv[1][0] == '-')
		return 0;
	for (const iac_provider *const *pp = iac_provider_all(); *pp; pp++) {
		const iac_provider *p = *pp;
		for (size_t t = 0; p->status_topics && p->status_topics[t]; t++) {
			const char *topic = p->status_topics[t];
			if (n < 32)
				topics[n++] = topic;
			for (size_t i = 0; p->commands && p->commands[i].name; i++) {
				if (strcmp(topic, argv[1]) || strcmp(p->commands[i].name, topic))
					continue;
				char **av = iac_xcalloc((size_t)argc + 2, sizeof(char *));
				av[0] = argv[1];
				av[1] = "status";
				for (int j = 2; j < argc; j++)
					av[j] = argv[j];
				*rc = p->commands[i].run(argc, av);
				free(av);
				return 1;
			}
		}
	}
	iac_buf list = IAC_BUF_INIT;
	for (size_t i = 0; i < n; i++)
		iac_buf_printf(&list, "%s%s", i ? ", " : "", topics[i]);
	topics[n] = NULL;
	const char *hint = iac_suggest(argv[1], topics, n);
	iac_log_error("unknown status topic '%s'%s%s%s; 'iac status' alone shows the state lock, and the topics "
		      "are: %s", argv[1], hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "",
		      n ? iac_buf_cstr(&list) : "none in this build");
	iac_buf_free(&list);
	*rc = 1;
	return 1;
}

int iac_cmd_status(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	int rc = 1;
	if (provider_status(&rc, argc, argv))
		return rc;
	iac_session_init(&s, "status");
	if (iac_session_args(&s, IAC_F_JSON, argc, argv, &pos) == 0)
		rc = iac_state_lock_status(&s);
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

int iac_cmd_force_unlock(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	json_t *info = NULL;
	int rc = 1;
	iac_session_init(&s, "force-unlock");
	if (iac_session_args(&s, 0, argc, argv, &pos) < 0 || iac_session_backend(&s, 0) < 0)
		goto done;
	if (pos.n != 1) {
		json_t *st = NULL;
		json_t *h = iac_backend_lock_status(&st, s.be) == 0 ? json_object_get(st, "holder") : NULL;
		if (json_is_object(h))
			iac_log_error("usage: iac force-unlock LOCK_ID (the lock is held by 'iac %s', pid %lld on '%s', "
				      "lock ID %s)", iac_json_str(h, "command") ?: "?",
				      (long long)json_integer_value(json_object_get(h, "pid")),
				      iac_json_str(h, "host") ?: "?", iac_json_str(h, "id") ?: "?");
		else
			iac_log_error("usage: iac force-unlock LOCK_ID (no live process holds the lock now)");
		json_decref(st);
		goto done;
	}
	if (iac_backend_force_unlock(&info, s.be, pos.items[0]) < 0) {
		iac_session_error(NULL);
		goto done;
	}
	printf("Lock %s removed.\n", pos.items[0]);
	iac_session_record(&s, json_pack("{s:s,s:s,s:O?}", "command", "force-unlock", "lock_id", pos.items[0],
					 "holder", info));
	rc = 0;
done:
	json_decref(info);
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

/* ---- iac init -migrate-state ------------------------------------------------ */

/* Copy src's state into dst (both locked), then read dst back and compare
 * checksums. */
static int migrate(iac_backend *src, iac_backend *dst, int force)
{
	iac_state *from = NULL, *to = NULL, *check = NULL;
	char *sum_from = NULL, *sum_check = NULL;
	int rc = IAC_ERR;

	if (iac_backend_state_open(&from, src) < 0 || iac_backend_state_open(&to, dst) < 0)
		goto done;
	if (!iac_state_is_new(to) && iac_state_count(to) && !force) {
		iac_err_set("%s already holds a state (%zu resource(s), serial %ld, lineage %s); nothing was "
			    "copied. Use -force-copy to overwrite it", iac_backend_label(dst), iac_state_count(to),
			    iac_state_serial(to), iac_state_lineage(to));
		goto done;
	}
	json_t *doc = iac_state_to_json(from);
	rc = iac_state_replace(to, doc);
	json_decref(doc);
	if (rc < 0 || (rc = iac_state_flush(to)) < 0)
		goto done;
	if ((rc = iac_backend_state_open(&check, dst)) < 0)
		goto done;
	sum_from = iac_state_checksum(from);
	sum_check = iac_state_checksum(check);
	if (strcmp(sum_from, sum_check)) {
		rc = iac_err_set("the copy in %s reads back differently (sha256 %.16s… vs %.16s…); the source is "
				 "left as it was", iac_backend_label(dst), sum_check, sum_from);
		goto done;
	}
	printf("Migrated %zu resource(s) from %s to %s; checksum sha256:%s matches.\n", iac_state_count(from),
	       iac_backend_label(src), iac_backend_label(dst), sum_from);
	rc = 0;
done:
	free(sum_from);
	free(sum_check);
	iac_state_free(check);
	iac_state_free(to);
	iac_state_free(from);
	return rc;
}

/* The local state's files are set aside once it lives elsewhere, so that
 * nobody edits a copy that no command reads any more. */
static void retire_local(const char *dir)
{
	static const char *const names[] = { "state.json", "state.journal", "state.json.backup", NULL };
	for (int i = 0; names[i]; i++) {
		char *p = iac_xasprintf("%s/.iac/%s", dir, names[i]);
		char *q = iac_xasprintf("%s.migrated", p);
		rename(p, q);
		free(p);
		free(q);
	}
}

/* Where state is now: .iac/backend.json's backend, ignoring main.lua. */
static int current_backend(iac_backend **out, iac_session *s)
{
	/* credentials given for the old place (it is etcd) apply to it too */
	int remembered = access(".iac/backend.json", F_OK) == 0;
	return iac_backend_open(out, ".", 0, NULL, remembered ? &s->backend_config : NULL);
}

static int init_migrate(iac_session *s, const char *to_kind, int force)
{
	iac_backend *src = NULL, *dst = NULL;
	int rc = IAC_ERR;
	const json_t *decl = json_object_get(s->cfg->sections, "backend");

	if (current_backend(&src, s) < 0)
		goto done;
	if (to_kind && !strcmp(to_kind, "local"))
		rc = iac_backend_open_kind(&dst, ".", "local", NULL, NULL);
	else if (decl)
		rc = iac_backend_open_kind(&dst, ".", "etcd", json_object_get(decl, "settings"), &s->backend_config);
	else
		rc = iac_backend_open_kind(&dst, ".", "local", NULL, NULL);
	if (rc < 0)
		goto done;
	if (!strcmp(iac_backend_kind(src), iac_backend_kind(dst)) &&
	    !strcmp(iac_backend_label(src), iac_backend_label(dst))) {
		printf("The state is already in %s; nothing to migrate.\n", iac_backend_label(dst));
		rc = 0;
		goto done;
	}
	if ((rc = iac_backend_lock(NULL, src, "init -migrate-state", s->lock_timeout_ms)) < 0 ||
	    (rc = iac_backend_lock(NULL, dst, "init -migrate-state", s->lock_timeout_ms)) < 0 ||
	    (rc = migrate(src, dst, force)) < 0)
		goto done;
	if (!strcmp(iac_backend_kind(src), "local"))
		retire_local(".");
	else
		printf("The copy in %s is left as it was; delete it once you are sure (etcdctl del --prefix).\n",
		       iac_backend_label(src));
	rc = iac_backend_remember(dst);
done:
	if (rc < 0)
		iac_session_error("state not migrated");
	iac_backend_free(dst);
	iac_backend_free(src);
	return rc;
}

/* What loading did with git module sources. */
static void modules_report(void)
{
	const json_t *r = iac_modsrc_report(), *line;
	size_t i;
	long n = r ? (long)json_integer_value(json_object_get(r, "sources")) : 0;
	if (!n)
		return;
	json_array_foreach(json_object_get(r, "changes"), i, line)
		printf("%s\n", json_string_value(line));
	printf("Modules: %ld git source(s) locked in iac.lock (%ld repositor%s fetched).\n", n,
	       (long)json_integer_value(json_object_get(r, "fetched")),
	       json_integer_value(json_object_get(r, "fetched")) == 1 ? "y" : "ies");
}

int iac_cmd_init(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	int rc = 1, migrate_flag = 0, force_copy = 0, upgrade = 0;
	const char *to_kind = NULL;
	const iac_opt own[] = {
		{ "upgrade", IAC_OPT_BOOL, &upgrade, "resolve the refs of git module sources again" },
		{ "migrate-state", IAC_OPT_BOOL, &migrate_flag, "move state to the backend main.lua declares" },
		{ "force-copy", IAC_OPT_BOOL, &force_copy, "overwrite a state the new backend already holds" },
		{ "backend", IAC_OPT_STRING, &to_kind, "with -migrate-state: 'local' brings state back to .iac/" },
		{ NULL, 0, NULL, NULL },
	};
	iac_session_init(&s, "init");
	if (iac_session_args_own(&s, IAC_F_VARS | IAC_F_LOCK, own, argc, argv, &pos) < 0)
		goto done;
	/* loading main.lua in this mode fetches git module sources and writes iac.lock */
	iac_modsrc_set_mode(upgrade ? IAC_MODSRC_UPGRADE : IAC_MODSRC_INIT);
	if (iac_session_load(&s) < 0)
		goto done;
	modules_report();
	if (migrate_flag) {
		rc = init_migrate(&s, to_kind, force_copy) < 0 ? 1 : 0;
		goto done;
	}
	/* no migration: check that the declared backend answers, and remember it */
	if (iac_session_open_state(&s, 0) < 0)
		goto done;
	printf("Backend: %s (%zu resource(s) in state).\n", iac_backend_label(s.be), iac_state_count(s.st));
	rc = 0;
done:
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

void iac_help_init(void)
{
	printf("\nusage: iac init [-upgrade] [-migrate-state [-backend=local] [-force-copy]] [-backend-config KEY=VALUE]...\n\n"
	       "Fetches the git module sources main.lua uses (module \"x\" { source = \"git+https://...//dir?ref=v1\" })\n"
	       "into .iac/modules/ and pins each one's commit and checksum in iac.lock (commit it); other\n"
	       "commands use only what iac.lock pins. -upgrade resolves the refs again (old -> new commit).\n"
	       "Checks that the backend main.lua declares (backend \"etcd\" { ... }; the default is .iac/)\n"
	       "answers, and records it in .iac/backend.json for commands that do not read main.lua.\n"
	       "-migrate-state copies the state from where it is now to the declared backend (or back to\n"
	       ".iac/ with -backend=local), under both locks, and verifies the copy by checksum.\n");
	iac_session_usage(IAC_F_LOCK);
}
