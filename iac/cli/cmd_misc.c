/* cmd_misc: help, version and the command table. */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <git2.h>
#include <jansson.h>
#include <libssh2.h>
#include <lua.h>

#include "iac/cli/commands.h"

static int cmd_version(int argc, char **argv)
{
	int maj, min, rev;
	git_libgit2_version(&maj, &min, &rev);
	printf("iac %s\n", IAC_VERSION);
	printf("  %s, jansson %s, libcurl %s, libssh2 %s, libgit2 %d.%d.%d\n",
	       LUA_RELEASE, JANSSON_VERSION, curl_version_info(CURLVERSION_NOW)->version,
	       LIBSSH2_VERSION, maj, min, rev);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	if (argc < 2) {
		iac_usage(stdout);
		return 0;
	}
	const iac_command *c = iac_command_find(argv[1]);
	if (!c) {
		fprintf(stderr, "error: unknown command '%s'; see 'iac help'\n", argv[1]);
		return 1;
	}
	printf("iac %s: %s\n", c->name, c->summary);
	if (c->help)
		c->help();
	return 0;
}

static const iac_command builtin[] = {
	{ "init", iac_cmd_init, "check the state backend; move state between backends", iac_help_init },
	{ "validate", iac_cmd_validate, "check the configuration without touching anything", iac_help_validate },
	{ "plan", iac_cmd_plan, "show what apply would change", iac_help_plan },
	{ "apply", iac_cmd_apply, "make the changes (or apply a saved plan)", iac_help_apply },
	{ "destroy", iac_cmd_destroy, "remove everything this configuration manages", iac_help_destroy },
	{ "graph", iac_cmd_graph, "print the dependency graph as DOT", iac_help_graph },
	{ "output", iac_cmd_output, "print output values from state", iac_help_output },
	{ "state", iac_cmd_state, "list, show, move or forget resources; pull/push state; lock, history, diff", iac_help_state },
	{ "show", iac_cmd_show, "show state or a saved plan (-json)", iac_help_show },
	{ "import", iac_cmd_import, "adopt an existing object into state", iac_help_import },
	{ "fmt", iac_cmd_fmt, "rewrite topology files in the canonical layout (StyLua)", iac_help_fmt },
	{ "force-unlock", iac_cmd_force_unlock, "remove a lock left behind, by its id", NULL },
	{ "status", iac_cmd_status, "who holds the state lock, and who waits", NULL },
#ifdef IAC_HAVE_loadtest
	{ "loadtest", iac_loadtest_main, "run a Lua load-test scenario against an HTTP service", iac_loadtest_help },
#endif
	{ NULL, NULL, NULL, NULL },
};

/* listed after the providers' commands */
static const iac_command last[] = {
	{ "version", cmd_version, "print the version", NULL },
	{ "help", cmd_help, "show help for a command", NULL },
	{ NULL, NULL, NULL, NULL },
};

void iac_commands_each(void (*fn)(const iac_command *c, void *ud), void *ud)
{
	for (const iac_command *c = builtin; c->name; c++)
		fn(c, ud);
	for (const iac_provider *const *p = iac_provider_all(); *p; p++)
		for (const iac_command *c = (*p)->commands; c && c->name; c++)
			fn(c, ud);
	for (const iac_command *c = last; c->name; c++)
		fn(c, ud);
}

typedef struct {
	const char *name;
	const iac_command *found;
} finder;

static void find_one(const iac_command *c, void *ud)
{
	finder *f = ud;
	if (!f->found && !strcmp(c->name, f->name))
		f->found = c;
}

const iac_command *iac_command_find(const char *name)
{
	finder f = { name, NULL };
	iac_commands_each(find_one, &f);
	return f.found;
}

static void list_one(const iac_command *c, void *ud)
{
	fprintf(ud, "  %-12s %s\n", c->name, c->summary);
}

void iac_usage(FILE *f)
{
	fprintf(f, "usage: iac [-chdir=DIR] [-no-color] COMMAND [flags] [args]\n\ncommands:\n");
	iac_commands_each(list_one, f);
	fprintf(f, "\n'iac help COMMAND' shows a command's flags.\n");
}
