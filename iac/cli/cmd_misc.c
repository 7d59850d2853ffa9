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
		printf("usage: iac [-chdir=DIR] [-no-color] COMMAND [flags] [args]\n\ncommands:\n");
		for (const iac_command *c = iac_commands(); c->name; c++)
			printf("  %-12s %s\n", c->name, c->summary);
		printf("\n'iac help COMMAND' shows a command's flags.\n");
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

/* Engine commands live in cmd_*.c; declared here to keep one table. */
int iac_cmd_validate(int, char **);
int iac_cmd_plan(int, char **);
int iac_cmd_apply(int, char **);
int iac_cmd_destroy(int, char **);
int iac_cmd_graph(int, char **);
int iac_cmd_output(int, char **);
int iac_cmd_state(int, char **);
int iac_cmd_show(int, char **);
int iac_cmd_force_unlock(int, char **);
int iac_cmd_rollback(int, char **);
int iac_cmd_flag(int, char **);
void iac_help_flag(void);
void iac_help_rollback(void);
void iac_help_validate(void);
void iac_help_plan(void);
void iac_help_apply(void);
void iac_help_destroy(void);
void iac_help_graph(void);
void iac_help_output(void);
void iac_help_state(void);
void iac_help_show(void);

static const iac_command table[] = {
	{ "validate", iac_cmd_validate, "check the configuration without touching anything", iac_help_validate },
	{ "plan", iac_cmd_plan, "show what apply would change", iac_help_plan },
	{ "apply", iac_cmd_apply, "make the changes (or apply a saved plan)", iac_help_apply },
	{ "destroy", iac_cmd_destroy, "remove everything this configuration manages", iac_help_destroy },
	{ "graph", iac_cmd_graph, "print the dependency graph as DOT", iac_help_graph },
	{ "output", iac_cmd_output, "print output values from state", iac_help_output },
	{ "state", iac_cmd_state, "list, show or forget resources in state", iac_help_state },
	{ "show", iac_cmd_show, "show state or a saved plan (-json)", iac_help_show },
	{ "flag", iac_cmd_flag, "list, set or reset feature flags live", iac_help_flag },
	{ "rollback", iac_cmd_rollback, "switch deployments back to their standby colour, now", iac_help_rollback },
	{ "force-unlock", iac_cmd_force_unlock, "remove a lock left behind, by its id", NULL },
#ifdef IAC_HAVE_loadtest
	{ "loadtest", iac_loadtest_main, "run a Lua load-test scenario against an HTTP service", iac_loadtest_help },
#endif
	{ "version", cmd_version, "print the version", NULL },
	{ "help", cmd_help, "show help for a command", NULL },
	{ NULL, NULL, NULL, NULL },
};

const iac_command *iac_commands(void)
{
	return table;
}

const iac_command *iac_command_find(const char *name)
{
	for (const iac_command *c = table; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}
