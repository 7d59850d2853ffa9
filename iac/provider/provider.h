/* provider: the interface every provider implements (local, ssh, haproxy...).
 *
 * A provider is a table of resource types; a resource type is a schema plus
 * a table of functions, the curl way: the engine never knows what a resource
 * does, only how to ask for it. Modules (Lua) declare; providers act.
 *
 * Values are Jansson objects holding plain JSON: by the time a provider sees
 * `planned`, every reference has been resolved. During plan only, a value the
 * engine cannot know yet is the unknown marker (iac_value_is_unknown()).
 *
 * Ownership: `prior` and `planned` are borrowed. Functions that produce an
 * object store a new reference in *out; the engine owns it afterwards.
 * Threads: the engine calls read/create/update/remove from worker threads,
 * several at once, for different resources. A provider that keeps shared
 * connections (ssh) must lock them itself.
 */
#ifndef IAC_PROVIDER_PROVIDER_H
#define IAC_PROVIDER_PROVIDER_H

#include <jansson.h>

/* Attribute types, checked by the engine before a provider sees a value. */
enum iac_attr_type {
	IAC_T_ANY = 0,
	IAC_T_STRING,
	IAC_T_NUMBER,
	IAC_T_BOOL,
	IAC_T_LIST,
	IAC_T_MAP,
	IAC_T_HOST,    /* a host object: {"name","address","port",...} from host "x" {...} */
};

/* Attribute flags. */
enum {
	IAC_A_REQUIRED  = 1 << 0,  /* must be set in configuration */
	IAC_A_COMPUTED  = 1 << 1,  /* set by the provider, not by the user */
	IAC_A_FORCE_NEW = 1 << 2,  /* a change forces replacement */
	IAC_A_SENSITIVE = 1 << 3,  /* always redacted in output and state */
	IAC_A_NO_DIFF   = 1 << 4,  /* never causes an update by itself (e.g. destroy command) */
	IAC_A_WATCH     = 1 << 5,  /* a list of resources (restart_on = { conf }): each
				    * arrives as "sha256:<digest of its configuration>",
				    * so a change of one of them changes this attribute */
};

typedef struct iac_attr {
	const char *name;          /* NULL terminates a schema */
	enum iac_attr_type type;
	unsigned flags;
	const char *doc;           /* one line, for `iac help` and docs */
} iac_attr;

struct iac_hosts;

typedef struct iac_rctx iac_rctx;
struct iac_rctx {
	const char *addr;          /* resource address, for messages */
	const char *config_dir;    /* relative paths in attributes resolve here */
	void *pdata;               /* what the provider's configure() returned */
	/* Running things on hosts (iac/host/host.h): this machine, or one
	 * SSH connection per host shared by every provider in the run. NULL
	 * while `validate` calls plan hooks: no host may be touched then. */
	struct iac_hosts *hosts;
	const volatile int *cancel;/* non-zero: stop waiting, fail fast */
	/* Optional progress line ("addr: still creating... (10s)"); may be NULL. */
	void (*progress)(const iac_rctx *ctx, const char *msg);
	/* Optional: a note for the person reading the plan ("flag 'x': the live
	 * value differs from main.lua; keeping it"); may be NULL. */
	void (*warn)(const iac_rctx *ctx, const char *msg);
	void *engine;              /* engine private */
	void *caller;              /* engine private (for warn) */
};

typedef struct iac_rtype {
	const char *name;          /* full type name: "local.file" */
	const iac_attr *attrs;     /* schema, NULL-name terminated */
	int is_data;               /* a data source: only read() */
	const char *doc;

	/* Fill computed attributes that can be known before apply (sha256 of
	 * content, say) into `planned`, which may hold unknown markers. Optional.
	 * Setting planned["$update"] to a string asks for an update even when
	 * no attribute changed (time-based work: a standby to scale down); the
	 * string is shown as the reason. */
	int (*plan)(const iac_rctx *ctx, json_t *planned, const json_t *prior);

	/* Read back the real object described by `prior` (state attributes, or
	 * for data sources the configuration). *out = the attributes as they are
	 * now, or NULL when the object no longer exists. IAC_ERR on failure.
	 * After a crash, a create that had started is read with its planned
	 * attributes plus "$interrupted": true; a provider that cannot tell
	 * whether the object exists answers NULL, and the create runs again. */
	int (*read)(const iac_rctx *ctx, json_t **out, const json_t *prior);

	/* Make the object; *out = full attributes to store in state. */
	int (*create)(const iac_rctx *ctx, json_t **out, const json_t *planned);

	/* Change in place; *out = full attributes to store. Optional: without it,
	 * every change is a replacement. */
	int (*update)(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned);

	/* Remove the object. Removing an object that is already gone succeeds. */
	int (*remove)(const iac_rctx *ctx, const json_t *prior);

	/* Optional: reach the host the object lives on (its IAC_T_HOST
	 * attribute), changing nothing. The engine calls it during plan, once
	 * per host, for hosts it would otherwise meet only during apply (every
	 * resource there is new), so an unreachable host is known before
	 * anything changes. IAC_ERR with the host marked (iac_err_host_down())
	 * when it cannot be reached. */
	int (*probe)(const iac_rctx *ctx, const json_t *attrs);

	/* Optional: the attribute that names an existing object for `iac
	 * import ADDR ID` ("path" for files); ID is put there before read(). */
	const char *import_attr;

	/* Optional: what the plan says when read() finds no object for a
	 * resource in state (default "deleted outside iac"): "not running"
	 * for a service. */
	const char *gone_reason;
} iac_rtype;

/* A sub-command a provider adds to `iac` ("rollback", "flag"): argv[0] is
 * the command's name; the result is the exit code. Commands share the
 * engine's session (iac/cli/session.h) for flags, lock and state. */
typedef struct iac_provider_command {
	const char *name;          /* NULL terminates a list */
	int (*run)(int argc, char **argv);
	const char *summary;       /* one line for `iac help` */
	void (*help)(void);        /* may be NULL: summary only */
} iac_provider_command;

/* A true/false flag a provider adds to plan, apply and destroy: given, it
 * sets `key` to true in the provider's configuration for that run
 * (-ssh-accept-new sets ssh's accept_new). */
typedef struct iac_provider_flag {
	const char *flag;          /* without the dash; NULL terminates a list */
	const char *key;
	const char *help;
} iac_provider_flag;

struct iac_state;
struct iac_providers;
struct iac_config;

/* A live operation a provider offers to commands, its own or another
 * provider's, found by name (iac_provider_op()), so that no provider
 * includes another's header: deploy's rollback sets flags through flags'
 * "set". Works on state and provider instances the caller holds (lock
 * taken); *report (new reference, may stay NULL) says what was done. */
typedef struct iac_provider_op {
	const char *name;          /* NULL terminates a list */
	int (*run)(json_t **report, struct iac_state *st, struct iac_providers *pv, const json_t *args);
} iac_provider_op;

typedef struct iac_provider {
	const char *name;          /* "local": owns every type named "local.*" */
	const iac_rtype *const *types; /* NULL terminated */
	/* Optional: build provider data from `provider "name" { ... }` (config may
	 * be an empty object). Called once per run before any resource call. */
	int (*configure)(void **out_pdata, const json_t *config, const char *config_dir);
	/* Optional: release what configure() made (close connections). */
	void (*close)(void *pdata);

	/* Optional: set how the run's hosts are reached (iac_hosts_set_ssh)
	 * from this provider's block; called once, on the first remote use by
	 * any provider (ssh: user, keys, known_hosts, timeouts). */
	int (*configure_hosts)(struct iac_hosts *hosts, const json_t *config, const char *config_dir);

	/* Optional extensions of the CLI and the language, each NULL-name
	 * terminated (or NULL): sub-commands, plan/apply/destroy flags, live
	 * operations, and a Lua file under modules/ that runs once before
	 * main.lua with the shared globals table and require as its arguments
	 * (declarations that read like keywords: deployment "web" { ... }). */
	const iac_provider_command *commands;
	/* Those of its commands that take `status` first, NULL-terminated:
	 * `iac status NAME ARGS` runs `iac NAME status ARGS` (never any other
	 * command: `iac status rollback` must not roll anything back). */
	const char *const *status_topics;
	const iac_provider_flag *flags;
	const iac_provider_op *ops;
	const char *prelude;

	/* Optional: after main.lua ran, turn the declarations this provider
	 * owns (cfg->sections, filled by its prelude) into resources
	 * (iac_config_add()) and check rules that span resources. Errors
	 * are "FILE:LINE: ...". */
	int (*finalize)(struct iac_config *cfg);
} iac_provider;

/* The registry of built-in providers (provider/registry.c). */
const iac_provider *iac_provider_find(const char *name);
/* Find a resource type by full name ("local.file"); NULL when unknown. Sets
 * *out_provider when not NULL. */
const iac_rtype *iac_provider_find_type(const char *type, const iac_provider **out_provider);
/* Schema lookup helper; NULL when the attribute is unknown. */
const iac_attr *iac_rtype_attr(const iac_rtype *t, const char *name);
/* All built-in providers, NULL terminated. */
const iac_provider *const *iac_provider_all(void);
/* The operation "name" of provider "provider", or NULL when that provider
 * is not built in or offers no such operation. */
const iac_provider_op *iac_provider_op_find(const char *provider, const char *name);

#endif
