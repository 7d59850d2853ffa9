/* args: Terraform-style command-line flags shared by every command.
 *
 * Accepted forms: -name, -name=value, -name value, and the same with "--".
 * Boolean flags also take -name=true|false. Everything that does not start
 * with '-' (or comes after "--") is positional.
 */
#ifndef IAC_CORE_ARGS_H
#define IAC_CORE_ARGS_H

#include <stddef.h>

typedef struct {
	char **items;    /* NULL terminated once anything was pushed */
	size_t n;
	size_t cap;      /* slots allocated (doubling: long lists stay linear) */
} iac_strlist;

void iac_strlist_push(iac_strlist *l, const char *s);
void iac_strlist_free(iac_strlist *l);

enum iac_opt_kind {
	IAC_OPT_BOOL,     /* dest: int*, set to 1 */
	IAC_OPT_STRING,   /* dest: const char** (points into argv) */
	IAC_OPT_INT,      /* dest: int* */
	IAC_OPT_LIST,     /* dest: iac_strlist*, repeatable */
	IAC_OPT_DURATION, /* dest: double* milliseconds ("30s", "500ms") */
	IAC_OPT_DOUBLE,   /* dest: double* */
};

typedef struct {
	const char *name;          /* without dashes: "parallelism"; NULL ends */
	enum iac_opt_kind kind;
	void *dest;
	const char *help;          /* one line for `iac help COMMAND` */
} iac_opt;

/* Parse argv (argv[0] is the command name). Positional arguments are
 * collected into *pos. Returns 0, or -1 with a message like
 * "unknown flag '-x' for 'iac plan'". */
int iac_args_parse(const iac_opt *opts, const char *command, int argc, char **argv, iac_strlist *pos);

/* Print "  -name   help" lines for a command's flags. */
void iac_args_usage(const iac_opt *opts);
/* The same, with metavar(name) naming a flag's value ("NAME=VALUE"; NULL:
 * by its kind). */
void iac_args_usage_with(const iac_opt *opts, const char *(*metavar)(const char *name));

#endif
