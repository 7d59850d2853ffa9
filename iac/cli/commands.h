/* commands: the table of `iac` sub-commands and their entry points. Each
 * entry point takes argv with argv[0] = the command name and returns the
 * process exit code. */
#ifndef IAC_CLI_COMMANDS_H
#define IAC_CLI_COMMANDS_H

typedef struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
	void (*help)(void);   /* may be NULL: summary only */
} iac_command;

/* Global options parsed before the command (see main.c). */
typedef struct {
	const char *chdir;    /* -chdir=DIR */
	int no_color;
} iac_global_opts;

extern iac_global_opts iac_global;

const iac_command *iac_command_find(const char *name);
const iac_command *iac_commands(void);

#ifdef IAC_HAVE_loadtest
int iac_loadtest_main(int argc, char **argv);
void iac_loadtest_help(void);
#endif

#endif
