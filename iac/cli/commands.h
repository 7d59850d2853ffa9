/* commands: the `iac` sub-commands. Built-in commands are declared here and
 * defined in cmd_*.c (each includes this header, so a signature mismatch is
 * a compile error); providers add their own through their
 * iac_provider.commands (rollback, flag). Each entry point takes argv with
 * argv[0] = the command name and returns the process exit code.
 */
#ifndef IAC_CLI_COMMANDS_H
#define IAC_CLI_COMMANDS_H

#include <stdio.h>

#include "iac/provider/provider.h"

typedef iac_provider_command iac_command;

/* Global options parsed before the command (see main.c). */
typedef struct {
	const char *chdir;    /* -chdir=DIR */
	int no_color;
} iac_global_opts;

extern iac_global_opts iac_global;

/* The command called `name` (built in, or added by a provider), or NULL. */
const iac_command *iac_command_find(const char *name);
/* Call fn for every command, built-ins first, in the order `iac help`
 * lists them. */
void iac_commands_each(void (*fn)(const iac_command *c, void *ud), void *ud);
/* The top-level usage text with the command list. */
void iac_usage(FILE *f);

/* cmd_state.c */
int iac_cmd_validate(int argc, char **argv);
int iac_cmd_graph(int argc, char **argv);
int iac_cmd_output(int argc, char **argv);
int iac_cmd_state(int argc, char **argv);
int iac_cmd_show(int argc, char **argv);
int iac_cmd_force_unlock(int argc, char **argv);
void iac_help_validate(void);
void iac_help_graph(void);
void iac_help_output(void);
void iac_help_state(void);
void iac_help_show(void);

/* cmd_backend.c */
int iac_cmd_init(int argc, char **argv);
int iac_cmd_status(int argc, char **argv);
void iac_help_init(void);

/* cmd_import.c */
int iac_cmd_import(int argc, char **argv);
void iac_help_import(void);

/* cmd_fmt.c */
int iac_cmd_fmt(int argc, char **argv);
void iac_help_fmt(void);

/* cmd_plan.c */
int iac_cmd_plan(int argc, char **argv);
int iac_cmd_apply(int argc, char **argv);
int iac_cmd_destroy(int argc, char **argv);
void iac_help_plan(void);
void iac_help_apply(void);
void iac_help_destroy(void);

/* iac/loadtest/loadtest.c (listed when IAC_HAVE_loadtest) */
int iac_loadtest_main(int argc, char **argv);
void iac_loadtest_help(void);

#endif
