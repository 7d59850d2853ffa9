/* plan: desired (config) vs actual (state, refreshed) -> a list of changes.
 *
 * Steps: refresh every in-scope state entry through its provider, in
 * parallel (drift and interrupted operations show up here); then walk the
 * configuration in dependency order, resolve references against what is
 * already planned, let the provider fill what it can know early (plan
 * hook), and diff attribute by attribute; then add deletes for state
 * entries the configuration no longer has.
 *
 * Ownership: the plan borrows the config (changes point at its resources)
 * and copies what it needs from state. Free the plan before the config.
 */
#ifndef IAC_PLAN_PLAN_H
#define IAC_PLAN_PLAN_H

#include <jansson.h>
#include <stddef.h>

#include "iac/graph/graph.h"
#include "iac/load/config.h"
#include "iac/provider/runtime.h"
#include "iac/state/state.h"

typedef enum {
	IAC_ACT_NOOP = 0,
	IAC_ACT_CREATE,
	IAC_ACT_UPDATE,
	IAC_ACT_REPLACE,
	IAC_ACT_DELETE,
	IAC_ACT_READ,       /* data source read deferred to apply */
} iac_action;

const char *iac_action_name(iac_action a);   /* "create", "no-op"... */

typedef struct iac_change {
	char *addr;
	char *type;
	char *name;
	char *module;
	iac_action action;
	json_t *before;       /* state form (sensitive redacted); NULL for create */
	json_t *planned;      /* real planned values (secrets in clear, unknown markers):
			       * never printed or stored as is; NULL for delete */
	json_t *sensitive;    /* attribute names whose values are sensitive */
	json_t *changed;      /* attribute names that differ (update/replace) */
	json_t *forces;       /* attribute names forcing replacement ("triggers" too) */
	json_t *triggers;     /* resolved triggers (NULL when none) */
	json_t *deps;         /* addresses this waits for (config), or state deps (delete) */
	const char *reason;   /* why, when not obvious: "drift", "interrupted"... */
	int skipped;          /* left as it is (action no-op, reason says why): 1 its
			       * host could not be reached, 2 it depends on a skipped one */
	const char *host;     /* when skipped: the unreachable host at the root of it */
	int cbd;              /* create_before_destroy */
	iac_rconf *conf;      /* borrowed; NULL for delete */
	json_t *prior;        /* refreshed state entry (copy) or NULL */
} iac_change;

typedef struct iac_plan {
	iac_change *changes;  /* every in-scope resource, no-ops included */
	size_t n;
	json_t *output_changes;  /* name -> {"action","before","after","sensitive"} */
	json_t *drift;        /* addresses changed or deleted outside iac */
	char lineage[40];
	long serial;
	int destroy;
	size_t n_add, n_change, n_destroy;
	json_t *targets;      /* the -target list, or NULL */
	json_t *excludes;     /* the -exclude list, or NULL */
	json_t *moved;        /* ["OLD -> NEW"]: moved blocks followed in state (set by the caller) */
	json_t *limits;       /* the -limit list, or NULL */
	json_t *errors;       /* refresh errors (strings); a plan with errors fails */
	json_t *warnings;     /* notes from providers: [{"address","message"}] */
	json_t *reasons;      /* storage for provider-given reasons (strings) */
	json_t *unreachable;  /* hosts that could not be reached, in the order found:
			       * [{"host","address","error","resources":[addr...]}];
			       * their resources are skipped (left as they are) */
	size_t n_skipped;     /* changes skipped because of unreachable hosts */
} iac_plan;

typedef struct {
	int destroy;                  /* plan removal of everything in scope */
	const char *const *targets;   /* -target ADDR, NULL terminated; NULL = all */
	const char *const *replace;   /* -replace ADDR: force replacement */
	/* -exclude ADDR: leave it and what depends on it (when destroying:
	 * what it depends on) as they are */
	const char *const *excludes;
	/* -limit HOSTS: only resources on these hosts ("web1", or a label
	 * "role=web"; each entry may be a comma-separated list), and what
	 * they depend on */
	const char *const *limits;
	int refresh;                  /* read resources back (default on) */
	int parallelism;              /* refresh workers */
	int require_all_hosts;        /* an unreachable host fails the plan */
	const volatile int *stop;     /* set: stop refreshing (first Ctrl-C) */
	const volatile int *cancel;   /* set: abort running reads (second) */
} iac_plan_opts;

/* The dependency graph of a configuration: a node per resource (data = the
 * iac_rconf), an edge from each dependency to its dependent. Caller frees. */
iac_graph *iac_config_graph(const iac_config *cfg);

int iac_plan_make(iac_plan **out, iac_config *cfg, iac_state *st, iac_providers *pv,
		  const iac_plan_opts *opts);
void iac_plan_free(iac_plan *plan);

/* What `validate` checks beyond loading, touching no host and no state:
 * every resource's attribute types and its type's plan hook (value formats:
 * modes, durations, paths, rendered configs), with references unknown.
 * 0, or IAC_ERR with one "FILE:LINE: resource 'ADDR': ..." line per bad
 * resource. */
int iac_plan_validate(iac_config *cfg, iac_providers *pv);

/* "host 'web3' (10.0.0.4:22) is unreachable: connection refused; its 20
 * resources are left as they are", for one entry of plan->unreachable.
 * Caller frees. */
char *iac_plan_host_line(const json_t *host);

/* 1 when the plan changes anything (resources or outputs). */
int iac_plan_has_changes(const iac_plan *plan);

/* Find a change by address, or NULL. */
iac_change *iac_plan_find(const iac_plan *plan, const char *addr);

/* The attributes of a change as they may be shown or stored: sensitive ones
 * replaced (redacted form for state, "(sensitive)" for display). */
json_t *iac_change_display(const iac_change *c, const json_t *attrs);

/* State keeps sensitive attributes redacted. Before a provider reads or
 * removes an object, put the real values back from the configuration when
 * it still declares the resource. Attributes that cannot be recovered stay
 * redacted (a provider needing one must fail, not guess). New reference. */
json_t *iac_plan_unredact(iac_config *cfg, iac_state *st, const char *addr, const json_t *attrs);

/* A resolver for references at apply time: values of already-applied
 * resources, config attributes resolved from config (so secrets are never
 * read back from redacted state), computed ones from state. */
int iac_plan_resolve_applied(json_t **out, const char *addr, const char *attr, void *ud);
typedef struct {
	iac_config *cfg;
	iac_state *st;
} iac_apply_resolver;

#endif
