/* state: snapshot + journal, group-committed (see state.h). */
#include "iac/state/state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/map.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/state/store.h"

struct iac_state {
	char *dir;            /* .../.iac */
	char *snap_path;      /* local: the files; a store: its label, for messages */
	char *journal_path;
	iac_store *store;     /* NULL: the local files (borrowed) */
	char lineage[40];
	long serial;
	iac_map index;        /* address -> json_t* entry (one reference each) */
	json_t *outputs;
	json_t *extra;
	size_t replayed;

	/* Journal and group commit. */
	pthread_mutex_t lock;
	pthread_cond_t durable_cv;
	int jfd;
	unsigned long long next_seq;    /* last sequence number handed out */
	unsigned long long durable_seq; /* last sequence number on disk */
	unsigned long long snap_seq;    /* last sequence number in the snapshot */
	int writer_active;
	int write_failed;
	char write_error[512];
	iac_buf pending;               /* journal lines not yet written */
	int journal_torn;              /* replay dropped a torn last line ... */
	off_t journal_keep;            /* ... after this many bytes: cut there before
					* the next record, or it would be glued to it */
	double last_flush_ms;
	int (*guard)(void *ud);        /* may this process still write? */
	void *guard_ud;
	void (*recorder)(void *ud, const iac_state *st, const json_t *event);
	void *recorder_ud;
};

#define PREEMPTED "this command lost the state lock while it ran (its lease expired while the store could " \
		  "not be reached, or 'iac force-unlock' / 'iac rollback -force' took it): nothing more is " \
		  "written to state, so the new holder's changes are kept; run 'iac plan' to see where things stand"

void iac_state_set_recorder(iac_state *st, void (*fn)(void *ud, const iac_state *st, const json_t *event),
			    void *ud)
{
	st->recorder = fn;
	st->recorder_ud = ud;
}

void iac_state_run_recorder(const iac_state *st, const json_t *event)
{
	if (st->recorder)
		st->recorder(st->recorder_ud, st, event);
}

void iac_state_set_guard(iac_state *st, int (*ok)(void *ud), void *ud)
{
	st->guard = ok;
	st->guard_ud = ud;
}

static void new_lineage(char out[40])
{
	unsigned char b[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, b, sizeof(b)) != (ssize_t)sizeof(b)) {
		/* fall back to time and pid: lineage only needs to be unique per config */
		unsigned long long t = (unsigned long long)iac_now_us() ^ ((unsigned long long)getpid() << 32);
		memcpy(b, &t, 8);
		memcpy(b + 8, &t, 8);
	}
	if (fd >= 0)
		close(fd);
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

static void index_put(iac_state *st, json_t *entry)
{
	const char *addr = iac_json_str(entry, "address");
	json_t *old = iac_map_put(&st->index, addr, entry);
	json_decref(old);
}

static void index_del(iac_state *st, const char *addr)
{
	json_decref(iac_map_del(&st->index, addr));
}

/* ---- checking what is read ------------------------------------------
 * state.json and the journal come from disk, where anything can happen to
 * them (a hand edit, a bad merge, a disk error). Every field is checked
 * before it is used; anything off is an error naming the file, the place
 * and the field, never an empty or partial state (an empty state would make
 * the next apply create everything again). */

/* What is wrong with a resource entry, or NULL. */
static const char *entry_problem(const json_t *e)
{
	const json_t *v;
	if (!json_is_object(e))
		return "is not an object";
	if (!json_is_string(json_object_get(e, "address")) || !json_string_length(json_object_get(e, "address")))
		return "has no 'address'";
	if (!json_is_string(json_object_get(e, "type")))
		return "has no 'type'";
	if ((v = json_object_get(e, "attributes")) && !json_is_object(v))
		return "has 'attributes' that is not an object";
	if ((v = json_object_get(e, "sensitive_attributes")) && !iac_value_is_string_list(v))
		return "has 'sensitive_attributes' that is not a list of names";
	if ((v = json_object_get(e, "dependencies")) && !iac_value_is_string_list(v))
		return "has 'dependencies' that is not a list of addresses";
	if ((v = json_object_get(e, "pending"))) {
		const json_t *pl = json_object_get(v, "planned");
		if (!json_is_object(v) || !json_is_string(json_object_get(v, "action")) ||
		    (pl && !json_is_object(pl) && !json_is_null(pl)))
			return "has a 'pending' marker that is not {\"action\", \"planned\"}";
	}
	if (!json_object_get(e, "attributes") && !json_object_get(e, "pending"))
		return "has neither 'attributes' nor a 'pending' marker";
	return NULL;
}

/* What is wrong with an outputs object, or NULL. */
static const char *outputs_problem(const json_t *o)
{
	const char *k;
	json_t *v;
	if (!json_is_object(o))
		return "'outputs' is not an object";
	json_object_foreach((json_t *)o, k, v)
		if (!json_is_object(v) || !json_object_get(v, "value"))
			return "an output is not {\"value\": ...}";
	return NULL;
}

static int bad_state(const iac_state *st, const char *what)
{
	if (st->store)
		return iac_err_set("state in %s is damaged: %s; nothing was changed. 'iac state pull' shows it, "
				   "'iac state history' lists revisions to restore with 'iac state push'",
				   st->snap_path, what);
	char *bak = iac_xasprintf("%s.backup", st->snap_path);
	int have_bak = access(bak, F_OK) == 0;
	iac_err_set("state file '%s' is damaged: %s; nothing was changed. %s", st->snap_path, what,
		    have_bak ? "'state.json.backup' beside it holds the previous snapshot: check it and copy it "
			       "back, or restore the file from version control"
			     : "restore it from version control or a copy");
	free(bak);
	return IAC_ERR;
}

/* A snapshot's text (borrowed) into memory. */
static int parse_snapshot(iac_state *st, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *doc = NULL, *res, *e;
	size_t i;

	doc = json_loadb(text, len, 0, &jerr);
	if (!doc || !json_is_object(doc)) {
		if (st->store) {
			json_decref(doc);
			return bad_state(st, "it is not valid JSON");
		}
		iac_err_set("state file '%s' is not valid JSON (line %d: %s); restore it from "
			    "'%s.backup' or version control", st->snap_path, jerr.line, jerr.text, st->snap_path);
		json_decref(doc);
		return IAC_ERR;
	}
	json_int_t fmt = json_integer_value(json_object_get(doc, "format_version"));
	if (fmt > IAC_STATE_FORMAT) {
		iac_err_set("state '%s' has format %lld, newer than this iac understands (%d); upgrade iac",
			    st->snap_path, (long long)fmt, IAC_STATE_FORMAT);
		json_decref(doc);
		return IAC_ERR;
	}
	const char *lin = iac_json_str(doc, "lineage");
	json_t *serial = json_object_get(doc, "serial");
	res = json_object_get(doc, "resources");
	const char *problem = NULL;
	char where[200];
	if (!lin || !*lin || strlen(lin) >= sizeof(st->lineage))
		problem = "it has no valid 'lineage'";
	else if (!json_is_integer(serial) || json_integer_value(serial) < 0)
		problem = "its 'serial' is not a whole number";
	else if (json_integer_value(serial) >= LONG_MAX - 1)
		problem = "its 'serial' is too large to count on from";
	else if (!json_is_array(res))
		problem = "it has no 'resources' list";
	else if (json_object_get(doc, "outputs") && (problem = outputs_problem(json_object_get(doc, "outputs"))))
		;
	else if (json_object_get(doc, "extra") && !json_is_object(json_object_get(doc, "extra")))
		problem = "'extra' is not an object";
	json_array_foreach(res, i, e) {
		if (problem)
			break;
		const char *p = entry_problem(e);
		if (p) {
			snprintf(where, sizeof(where), "resources[%zu] %s", i, p);
			problem = where;
		} else if (iac_state_get(st, iac_json_str(e, "address"))) {
			snprintf(where, sizeof(where), "'%.120s' appears twice in 'resources'",
				 iac_json_str(e, "address"));
			problem = where;
		} else {
			index_put(st, json_incref(e));
		}
	}
	if (problem) {
		json_decref(doc);
		return bad_state(st, problem);
	}
	snprintf(st->lineage, sizeof(st->lineage), "%s", lin);
	st->serial = (long)json_integer_value(serial);
	st->snap_seq = (unsigned long long)json_integer_value(json_object_get(doc, "journal_seq"));
	if (json_is_object(json_object_get(doc, "outputs")))
		json_object_update(st->outputs, json_object_get(doc, "outputs"));
	if (json_is_object(json_object_get(doc, "extra")))
		json_object_update(st->extra, json_object_get(doc, "extra"));
	json_decref(doc);
	return 0;
}

static int load_snapshot(iac_state *st)
{
	char *text = NULL;
	size_t len;
	int rc = iac_file_read_flags(&text, &len, NULL, st->snap_path, O_NOFOLLOW);

	if (rc == IAC_ENOTFOUND) {
		iac_err_clear();
		return 0;
	}
	if (rc < 0)
		return IAC_ERR;
	rc = parse_snapshot(st, text, len);
	free(text);
	return rc;
}

/* What is wrong with a journal record, or NULL. */
static const char *record_problem(const json_t *rec)
{
	const char *op = iac_json_str(rec, "op");
	if (!json_is_object(rec) || !op)
		return "it has no 'op'";
	if (!json_is_integer(json_object_get(rec, "seq")) || !json_is_string(json_object_get(rec, "lineage")))
		return "it has no 'seq' or 'lineage'";
	if (!strcmp(op, "put"))
		return entry_problem(json_object_get(rec, "entry")) ? "its 'entry' is not a valid resource entry" : NULL;
	if (!strcmp(op, "rm"))
		return json_is_string(json_object_get(rec, "address")) ? NULL : "its 'address' is not a string";
	if (!strcmp(op, "outputs"))
		return outputs_problem(json_object_get(rec, "value"));
	if (!strcmp(op, "extra"))
		return json_is_string(json_object_get(rec, "key")) ? NULL : "its 'key' is not a string";
	return "its 'op' is unknown";
}

/* Apply one (checked) journal record to memory. */
static void apply_record(iac_state *st, json_t *rec)
{
	const char *op = iac_json_str(rec, "op");
	if (!op)
		return;
	if (!strcmp(op, "put"))
		index_put(st, json_incref(json_object_get(rec, "entry")));
	else if (!strcmp(op, "rm"))
		index_del(st, iac_json_str(rec, "address"));
	else if (!strcmp(op, "outputs") && json_is_object(json_object_get(rec, "value"))) {
		json_decref(st->outputs);
		st->outputs = json_incref(json_object_get(rec, "value"));
	} else if (!strcmp(op, "extra"))
		json_object_set(st->extra, iac_json_str(rec, "key"),
				json_object_get(rec, "value"));
}

/* Journal text (borrowed) over the snapshot. */
static int replay_text(iac_state *st, const char *text, size_t len)
{
	size_t pos = 0, lineno = 0;
	/* lines by length, not as C strings: a NUL byte (what a crash can leave
	 * in a file) is a damaged line, never the end of the journal */
	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos, start = pos;
		pos += n + (nl ? 1 : 0);
		if (n == 0)
			continue;
		lineno++;
		json_t *rec = json_loadb(line, n, 0, NULL);
		const char *problem = rec ? record_problem(rec) : "it is not JSON";
		if (problem) {
			/* a crash can only tear the last line, which belongs to
			 * nothing reported done: drop it. A bad line with more
			 * after it is damage: stop, keep the journal as it is. */
			int last = strspn(text + pos, "\n") == len - pos;
			json_decref(rec);
			if (last && !rec) {
				st->journal_torn = 1;
				st->journal_keep = (off_t)start;
				break;
			}
			iac_err_set("state journal '%s' is damaged: line %zu %s%s; nothing was changed and the "
				    "journal is kept. Look at that line (each line is one change, in order): fix or "
				    "delete it, then run the command again", st->journal_path, lineno, problem,
				    last ? "" : ", and records follow it");
			return IAC_ERR;
		}
		unsigned long long seq = (unsigned long long)json_integer_value(json_object_get(rec, "seq"));
		const char *lin = iac_json_str(rec, "lineage");
		if (!st->lineage[0] && lin)
			snprintf(st->lineage, sizeof(st->lineage), "%s", lin);
		if (seq > st->snap_seq && lin && !strcmp(lin, st->lineage)) {
			apply_record(st, rec);
			st->replayed++;
			if (seq > st->next_seq)
				st->next_seq = seq;
		}
		json_decref(rec);
	}
	return 0;
}

static int replay_journal(iac_state *st)
{
	char *text = NULL;
	size_t len;
	int rc = iac_file_read_flags(&text, &len, NULL, st->journal_path, O_NOFOLLOW);

	if (rc == IAC_ENOTFOUND) {
		iac_err_clear();
		return 0;
	}
	if (rc < 0)
		return IAC_ERR;
	rc = replay_text(st, text, len);
	free(text);
	return rc;
}

static iac_state *state_new(void)
{
	iac_state *st = iac_xcalloc(1, sizeof(*st));
	st->outputs = json_object();
	st->extra = json_object();
	st->jfd = -1;
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->durable_cv, NULL);
	return st;
}

/* After the snapshot and journal are in: counters and lineage. */
static void opened(iac_state *st)
{
	if (st->next_seq < st->snap_seq)
		st->next_seq = st->snap_seq;
	st->durable_seq = st->next_seq;
	if (!st->lineage[0])
		new_lineage(st->lineage);
}

int iac_state_open(iac_state **out, const char *dir)
{
	iac_state *st = state_new();

	st->dir = iac_path_join(dir, ".iac");
	st->snap_path = iac_path_join(st->dir, "state.json");
	st->journal_path = iac_path_join(st->dir, "state.journal");
	if (load_snapshot(st) < 0 || replay_journal(st) < 0) {
		iac_state_free(st);
		*out = NULL;
		return IAC_ERR;
	}
	opened(st);
	*out = st;
	return 0;
}

int iac_state_open_store(iac_state **out, iac_store *store, const char *dir)
{
	iac_state *st = state_new();
	char *snap = NULL, *journal = NULL;
	size_t snap_len = 0, journal_len = 0;
	int rc;

	st->store = store;
	st->dir = iac_path_join(dir, ".iac");
	st->snap_path = iac_xstrdup(store->label);
	st->journal_path = iac_xasprintf("%s journal", store->label);
	rc = store->ops->read(store, &snap, &snap_len, &journal, &journal_len);
	if (rc == 0 && snap)
		rc = parse_snapshot(st, snap, snap_len);
	if (rc == 0 && journal)
		rc = replay_text(st, journal, journal_len);
	free(snap);
	free(journal);
	if (rc < 0) {
		iac_state_free(st);
		*out = NULL;
		return rc;
	}
	opened(st);
	*out = st;
	return 0;
}

void iac_state_free(iac_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->index.cap; i++)
		if (st->index.slots[i].key)
			json_decref(st->index.slots[i].value);
	iac_map_free(&st->index);
	json_decref(st->outputs);
	json_decref(st->extra);
	if (st->jfd >= 0)
		close(st->jfd);
	iac_buf_free(&st->pending);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->durable_cv);
	free(st->dir);
	free(st->snap_path);
	free(st->journal_path);
	free(st);
}

const char *iac_state_lineage(const iac_state *st) { return st->lineage; }

int iac_state_is_new(const iac_state *st)
{
	return st->serial == 0 && st->next_seq == 0 && st->index.count == 0;
}

int iac_state_adopt_lineage(iac_state *st, const char *lineage)
{
	if (!iac_state_is_new(st))
		return iac_err_set("state already exists; its lineage cannot change");
	snprintf(st->lineage, sizeof(st->lineage), "%s", lineage);
	return 0;
}
long iac_state_serial(const iac_state *st) { return st->serial; }
size_t iac_state_replayed(const iac_state *st) { return st->replayed; }
const char *iac_state_dir(const iac_state *st) { return st->dir; }
size_t iac_state_count(const iac_state *st) { return st->index.count; }
json_t *iac_state_outputs(const iac_state *st) { return st->outputs; }
double iac_state_last_flush_ms(const iac_state *st) { return st->last_flush_ms; }

json_t *iac_state_get(const iac_state *st, const char *addr)
{
	return iac_map_get(&st->index, addr);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **iac_state_addresses(const iac_state *st, size_t *n)
{
	const char **v = iac_xmalloc((st->index.count + 1) * sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < st->index.cap; i++)
		if (st->index.slots[i].key)
			v[k++] = st->index.slots[i].key;
	qsort(v, k, sizeof(*v), cmp_str);
	*n = k;
	return v;
}

static int ensure_dir(const iac_state *st)
{
	return iac_private_dir(st->dir, NULL);
}

/* The journal file opened for appending (the first commit of this run),
 * its torn last line, found at load, dropped. */
static int journal_open(iac_state *st)
{
	if (ensure_dir(st) < 0)
		return IAC_ERR;
	st->jfd = open(st->journal_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (st->jfd < 0 && errno == ELOOP)
		return iac_err_set("state journal '%s' is a symbolic link; iac never follows links in .iac/ (remove it)",
				   st->journal_path);
	if (st->jfd < 0)
		return iac_err_sys("cannot open state journal '%s'", st->journal_path);
	if (st->journal_torn && ftruncate(st->jfd, st->journal_keep) < 0)
		return iac_err_sys("cannot drop the torn last line of state journal '%s'", st->journal_path);
	st->journal_torn = 0;
	return 0;
}

/* All of [p, p + left) appended to the journal file, then synced. */
static int journal_write(iac_state *st, const char *p, size_t left)
{
	while (left > 0) {
		ssize_t n = write(st->jfd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return iac_err_sys("cannot write state journal '%s'", st->journal_path);
		p += n;
		left -= (size_t)n;
	}
	if (fdatasync(st->jfd) < 0)
		return iac_err_sys("cannot sync state journal '%s'", st->journal_path);
	return 0;
}

/* Append a record and wait until it is on disk. One writer at a time
 * writes everything queued so far with a single fdatasync; the others wait
 * on the condition variable (group commit). Caller holds st->lock. */
static int journal_commit_locked(iac_state *st, json_t *rec)
{
	unsigned long long seq = ++st->next_seq;
	json_object_set_new(rec, "seq", json_integer((json_int_t)seq));
	json_object_set_new(rec, "lineage", json_string(st->lineage));
	char *line = json_dumps(rec, JSON_COMPACT);
	iac_buf_puts(&st->pending, line);
	iac_buf_putc(&st->pending, '\n');
	free(line);

	while (st->writer_active && st->durable_seq < seq && !st->write_failed)
		pthread_cond_wait(&st->durable_cv, &st->lock);
	while (!st->write_failed && st->durable_seq < seq) {
		/* become the writer for everything queued */
		st->writer_active = 1;
		unsigned long long upto = st->next_seq;
		iac_buf batch = st->pending;
		st->pending = (iac_buf)IAC_BUF_INIT;
		pthread_mutex_unlock(&st->lock);

		int ok = 1;
		if (st->guard && !st->guard(st->guard_ud)) {
			iac_err_set("%s", PREEMPTED);
			ok = 0;
		} else if (st->store) {
			ok = st->store->ops->append(st->store, batch.ptr, batch.len, upto) == 0;
		} else {
			ok = (st->jfd >= 0 || journal_open(st) == 0) && journal_write(st, batch.ptr, batch.len) == 0;
		}
		iac_buf_free(&batch);

		pthread_mutex_lock(&st->lock);
		st->writer_active = 0;
		if (!ok) {
			st->write_failed = 1;
			snprintf(st->write_error, sizeof(st->write_error), "%s", iac_err_last());
		} else {
			st->durable_seq = upto;
		}
		pthread_cond_broadcast(&st->durable_cv);
	}
	json_decref(rec);
	if (st->write_failed)
		return iac_err_set("%s", st->write_error);
	return 0;
}

int iac_state_write_failed(iac_state *st)
{
	pthread_mutex_lock(&st->lock);
	int failed = st->write_failed;
	if (failed)
		iac_err_set("%s", st->write_error);
	pthread_mutex_unlock(&st->lock);
	return failed;
}

int iac_state_put(iac_state *st, json_t *entry)
{
	pthread_mutex_lock(&st->lock);
	index_put(st, json_incref(entry));
	int rc = journal_commit_locked(st, json_pack("{s:s,s:o}", "op", "put", "entry", entry));
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int iac_state_remove(iac_state *st, const char *addr)
{
	pthread_mutex_lock(&st->lock);
	json_t *rec = json_pack("{s:s,s:s}", "op", "rm", "address", addr);
	index_del(st, addr);
	int rc = journal_commit_locked(st, rec);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int iac_state_begin(iac_state *st, const char *addr, const char *type,
		    const char *action, const json_t *planned)
{
	return iac_state_begin_with(st, addr, type, action, planned, NULL);
}

int iac_state_begin_with(iac_state *st, const char *addr, const char *type,
			 const char *action, const json_t *planned, const json_t *triggers)
{
	char when[32];
	json_t *entry;

	iac_time_rfc3339(when, sizeof(when));
	pthread_mutex_lock(&st->lock);
	json_t *cur = iac_state_get(st, addr);
	entry = cur ? json_copy(cur) : json_pack("{s:s,s:s}", "address", addr, "type", type);
	if (triggers && !cur)
		json_object_set(entry, "triggers", (json_t *)triggers);
	json_object_set_new(entry, "pending", json_pack("{s:s,s:O?,s:s}", "action", action,
							"planned", planned, "started", when));
	pthread_mutex_unlock(&st->lock);
	return iac_state_put(st, entry);
}

int iac_state_end(iac_state *st, const char *addr)
{
	pthread_mutex_lock(&st->lock);
	json_t *cur = iac_state_get(st, addr);
	if (!cur || !json_object_get(cur, "pending")) {
		pthread_mutex_unlock(&st->lock);
		return 0;
	}
	json_t *entry = json_copy(cur);
	json_object_del(entry, "pending");
	pthread_mutex_unlock(&st->lock);
	if (!json_object_get(entry, "attributes")) {
		/* a create that never finished: nothing to keep */
		json_decref(entry);
		return iac_state_remove(st, addr);
	}
	return iac_state_put(st, entry);
}

int iac_state_note_group(iac_state *st, const char *addr, const json_t *group)
{
	pthread_mutex_lock(&st->lock);
	json_t *cur = iac_state_get(st, addr);
	const json_t *pending = json_object_get(cur, "pending");
	if (!json_is_object(pending)) {
		pthread_mutex_unlock(&st->lock);
		return iac_err_set("'%s' has no operation in progress to record a command of", addr);
	}
	json_t *entry = json_copy(cur), *p = json_copy((json_t *)pending);
	json_t *groups = json_is_array(json_object_get(p, "groups")) ? json_copy(json_object_get(p, "groups"))
								      : json_array();
	json_array_append(groups, (json_t *)group);
	json_object_set_new(p, "groups", groups);
	json_object_set_new(entry, "pending", p);
	pthread_mutex_unlock(&st->lock);
	return iac_state_put(st, entry);
}

int iac_state_set_outputs(iac_state *st, json_t *outputs)
{
	pthread_mutex_lock(&st->lock);
	json_decref(st->outputs);
	st->outputs = outputs;
	int rc = journal_commit_locked(st, json_pack("{s:s,s:O}", "op", "outputs", "value", outputs));
	pthread_mutex_unlock(&st->lock);
	return rc;
}

json_t *iac_state_extra(const iac_state *st, const char *key)
{
	return json_object_get(st->extra, key);
}

int iac_state_set_extra(iac_state *st, const char *key, json_t *value)
{
	pthread_mutex_lock(&st->lock);
	json_object_set(st->extra, key, value);
	int rc = journal_commit_locked(st, json_pack("{s:s,s:s,s:O}", "op", "extra", "key", key,
						     "value", value));
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int iac_state_dirty(const iac_state *st)
{
	return st->next_seq != st->snap_seq;
}

static json_t *to_json_locked(const iac_state *st, long serial, unsigned long long seq)
{
	size_t n;
	const char **addrs = iac_state_addresses(st, &n);
	json_t *res = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append(res, iac_state_get(st, addrs[i]));
	free(addrs);
	json_error_t jerr;
	json_t *doc = json_pack_ex(&jerr, 0, "{s:i,s:s,s:I,s:s,s:I,s:o,s:O,s:O}", "format_version", IAC_STATE_FORMAT,
			 "lineage", st->lineage, "serial", (json_int_t)serial, "iac_version", IAC_VERSION,
			 "journal_seq", (json_int_t)seq, "resources", res, "outputs", st->outputs,
			 "extra", st->extra);
	if (!doc)
		iac_err_set("cannot build the state document: %s", jerr.text);
	return doc;
}

json_t *iac_state_to_json(const iac_state *st)
{
	return to_json_locked(st, st->serial, st->next_seq);
}

/* The path of the first value json_dumps refuses (for the error). */
static int bad_path(const json_t *v, iac_buf *path)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY);
	const char *k;
	json_t *e;
	size_t i, len = path->len;
	if (s) {
		free(s);
		return 0;
	}
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, e) {
			iac_buf_printf(path, ".%s", k);
			if (bad_path(e, path))
				return 1;
			path->len = len;
			path->ptr[len] = '\0';
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e) {
			iac_buf_printf(path, "[%zu]", i);
			if (bad_path(e, path))
				return 1;
			path->len = len;
			path->ptr[len] = '\0';
		}
	}
	return 1;
}

int iac_state_flush(iac_state *st)
{
	double t0 = iac_now_ms();
	int rc = IAC_ERR;

	if (!iac_state_dirty(st) && st->serial > 0)
		return 0;   /* nothing new since the snapshot */
	if (st->guard && !st->guard(st->guard_ud))
		return iac_err_set("%s", PREEMPTED);
	pthread_mutex_lock(&st->lock);
	unsigned long long seq = st->next_seq;
	json_t *doc = to_json_locked(st, st->serial + 1, seq);
	pthread_mutex_unlock(&st->lock);

	if (!doc)
		return IAC_ERR;
	/* Compact: at 100,000 resources parsing dominates every command, and
	 * Jansson's lexer pays for each byte. `iac show -json` pretty-prints. */
	char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17));
	if (!text) {
		iac_buf path = IAC_BUF_INIT;
		iac_buf_puts(&path, "state");
		bad_path(doc, &path);
		iac_err_set("cannot serialise state: the value at '%s' is not valid JSON", iac_buf_cstr(&path));
		iac_buf_free(&path);
		json_decref(doc);
		return IAC_ERR;
	}
	json_decref(doc);
	if (st->store) {
		if ((rc = st->store->ops->write(st->store, text, strlen(text), st->serial + 1, seq)) < 0)
			goto done;
		pthread_mutex_lock(&st->lock);
		st->serial++;
		st->snap_seq = seq;
		pthread_mutex_unlock(&st->lock);
		goto done;
	}
	if (ensure_dir(st) < 0)
		goto done;
	{
		/* keep the previous snapshot as state.json.backup (a hard link:
		 * no copy, and never a moment without a state.json) */
		char *bak = iac_xasprintf("%s.backup", st->snap_path);
		unlink(bak);
		if (link(st->snap_path, bak) < 0 && errno != ENOENT)
			iac_err_clear();
		free(bak);
	}
	if (iac_file_write_atomic(st->snap_path, text, strlen(text), 0600) < 0)
		goto done;

	pthread_mutex_lock(&st->lock);
	st->serial++;
	st->snap_seq = seq;
	/* Empty the journal only if nothing was added since the snapshot was
	 * taken; otherwise replay skips the records the snapshot already has. */
	if (st->next_seq == seq && st->durable_seq == seq && !st->writer_active) {
		if (st->jfd >= 0) {
			close(st->jfd);
			st->jfd = -1;
		}
		if (unlink(st->journal_path) < 0 && errno != ENOENT)
			iac_err_sys("cannot remove state journal '%s'", st->journal_path);
		st->journal_torn = 0;
	}
	pthread_mutex_unlock(&st->lock);
	rc = 0;
done:
	free(text);
	st->last_flush_ms = iac_now_ms() - t0;
	return rc;
}

/* NEW as an address for entry e (the same type): its module and name. */
static int parse_new_addr(char **module, char **name, const json_t *e, const char *to)
{
	const char *type = iac_json_str(e, "type") ?: "";
	const char *mode = iac_json_str(e, "mode");
	int data = mode && !strcmp(mode, "data");
	char *needle = iac_xasprintf("%s%s.", data ? "data." : "", type);
	const char *at = NULL;
	for (const char *p = strstr(to, needle); p; p = strstr(p + 1, needle))
		if (p == to || p[-1] == '.')
			at = p;
	*module = *name = NULL;
	if (!at || strchr(at + strlen(needle), '.') || !at[strlen(needle)] ||
	    (at != to && strncmp(to, "module.", 7))) {
		iac_err_set("'%s' is not an address of type %s%s (like %s%s.NAME or module.M.%s%s.NAME)", to,
			    data ? "data " : "", type, data ? "data." : "", type, data ? "data." : "", type);
		free(needle);
		return IAC_ERR;
	}
	*name = iac_xstrdup(at + strlen(needle));
	*module = at == to ? iac_xstrdup("") : iac_xstrndup(to, (size_t)(at - to - 1));
	free(needle);
	return 0;
}

/* under st->lock: e (steals) into the index, journaled when durable */
static int put_locked(iac_state *st, json_t *e, int durable)
{
	index_put(st, json_incref(e));
	if (!durable) {
		json_decref(e);
		return 0;
	}
	return journal_commit_locked(st, json_pack("{s:s,s:o}", "op", "put", "entry", e));
}

/* Entries that depended on `from` now depend on `to`. */
static int follow_deps_locked(iac_state *st, const char *from, const char *to, int durable)
{
	size_t n;
	const char **addrs = iac_state_addresses(st, &n);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		json_t *deps = json_object_get(iac_state_get(st, addrs[i]), "dependencies"), *d;
		size_t j;
		int hit = 0;
		json_array_foreach(deps, j, d)
			hit |= !strcmp(json_string_value(d) ?: "", from);
		if (!hit)
			continue;
		json_t *e = json_deep_copy(iac_state_get(st, addrs[i]));
		deps = json_object_get(e, "dependencies");
		json_array_foreach(deps, j, d)
			if (!strcmp(json_string_value(d) ?: "", from))
				json_array_set_new(deps, j, json_string(to));
		rc = put_locked(st, e, durable);
	}
	free(addrs);
	return rc;
}

int iac_state_move(iac_state *st, const char *from, const char *to, int durable)
{
	char *module = NULL, *name = NULL;
	int rc;
	pthread_mutex_lock(&st->lock);
	json_t *e = iac_state_get(st, from);
	if (!e) {
		rc = iac_err_set("no resource '%s' in state", from);
		rc = IAC_ENOTFOUND;
	} else if (iac_state_get(st, to)) {
		iac_err_set("'%s' is already in state", to);
		rc = IAC_ECONFLICT;
	} else if ((rc = parse_new_addr(&module, &name, e, to)) == 0) {
		json_t *moved = json_deep_copy(e);
		json_object_set_new(moved, "address", json_string(to));
		json_object_set_new(moved, "name", json_string(name));
		if (*module)
			json_object_set_new(moved, "module", json_string(module));
		else
			json_object_del(moved, "module");
		index_del(st, from);
		rc = put_locked(st, moved, durable);
		if (rc == 0 && durable)
			rc = journal_commit_locked(st, json_pack("{s:s,s:s}", "op", "rm", "address", from));
		if (rc == 0)
			rc = follow_deps_locked(st, from, to, durable);
	}
	pthread_mutex_unlock(&st->lock);
	free(module);
	free(name);
	return rc;
}

int iac_state_replace(iac_state *st, const json_t *doc)
{
	/* checked exactly like a snapshot read from disk, on a scratch state */
	char *text = json_dumps(doc, JSON_COMPACT);
	iac_state *tmp = state_new();
	int rc;

	tmp->snap_path = iac_xstrdup("the state to write");
	tmp->journal_path = iac_xstrdup("-");
	rc = text ? parse_snapshot(tmp, text, strlen(text)) : iac_err_set("the state to write is not JSON");
	free(text);
	if (rc < 0) {
		iac_state_free(tmp);
		return rc;
	}
	pthread_mutex_lock(&st->lock);
	iac_map swap = st->index;
	st->index = tmp->index;
	tmp->index = swap;
	json_t *o = st->outputs, *x = st->extra;
	st->outputs = tmp->outputs;
	st->extra = tmp->extra;
	tmp->outputs = o;
	tmp->extra = x;
	snprintf(st->lineage, sizeof(st->lineage), "%s", tmp->lineage);
	if (tmp->serial > st->serial)
		st->serial = tmp->serial;
	st->next_seq++;   /* dirty: the next flush writes it all */
	pthread_mutex_unlock(&st->lock);
	iac_state_free(tmp);
	return 0;
}

char *iac_state_checksum(const iac_state *st)
{
	json_t *doc = iac_state_to_json(st);
	/* what the state says, not when it was written */
	json_object_del(doc, "serial");
	json_object_del(doc, "journal_seq");
	json_object_del(doc, "iac_version");
	char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
	char hex[65];
	iac_sha256_hex(hex, text ? text : "", text ? strlen(text) : 0);
	free(text);
	json_decref(doc);
	return iac_xstrdup(hex);
}
