/* main: `iac [global options] COMMAND [flags] [args]`.
 * Global options: -chdir=DIR (run as if started in DIR), -no-color,
 * -version, -help. Everything else belongs to the command. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "iac/cli/commands.h"
#include "iac/state/history.h"
#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/util.h"

iac_global_opts iac_global;

static void add_name(const iac_command *c, void *ud)
{
	const char **names = ud;
	size_t n = 0;
	while (names[n])
		n++;
	if (n < 63)
		names[n] = c->name;
}

static int unknown_command(const char *name)
{
	const char *names[64] = { 0 };
	size_t n = 0;
	iac_commands_each(add_name, names);
	while (names[n])
		n++;
	const char *pick = iac_suggest(name, names, n);
	if (pick)
		iac_log_error("unknown command '%s' (did you mean '%s'?); see 'iac help'", name, pick);
	else
		iac_log_error("unknown command '%s'; see 'iac help'", name);
	return 1;
}

/* `iac plan -h` / `-help` / `--help`: the command's help, like `iac help
 * plan` (flags after `--` are arguments). */
static int wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return 0;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "-help") || !strcmp(argv[i], "--help"))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int i = 1;

	signal(SIGPIPE, SIG_IGN);
	iac_history_set_argv(argc - 1, argv + 1);
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i] + (argv[i][1] == '-' ? 2 : 1);
		if (!strncmp(a, "chdir=", 6))
			iac_global.chdir = a + 6;
		else if (!strcmp(a, "chdir") && i + 1 < argc)
			iac_global.chdir = argv[++i];
		else if (!strcmp(a, "no-color"))
			iac_global.no_color = 1;
		else if (!strcmp(a, "version") || !strcmp(a, "v"))
			return iac_command_find("version")->run(1, (char *[]){ "version", NULL });
		else if (!strcmp(a, "help") || !strcmp(a, "h")) {
			iac_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "error: unknown global option '%s'; see 'iac help'\n", argv[i]);
			return 1;
		}
	}
	if (i >= argc) {
		iac_usage(stderr);
		return 1;
	}
	iac_log_set_color(iac_global.no_color ? 0 : -1);
	const iac_command *c = iac_command_find(argv[i]);
	if (!c)
		return unknown_command(argv[i]);
	if (wants_help(argc - i, argv + i))
		return iac_command_find("help")->run(2, (char *[]){ "help", argv[i], NULL });
	if (iac_global.chdir && chdir(iac_global.chdir) < 0) {
		iac_log_error("cannot change to directory '%s' (-chdir): %m", iac_global.chdir);
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = c->run(argc - i, argv + i);
	curl_global_cleanup();
	return rc;
}
