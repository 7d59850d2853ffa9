/* cmd_fmt: `iac fmt [-check] [-diff] [-recursive] [PATH...]` — the
 * canonical layout of topology files, as `terraform fmt` gives HCL one.
 *
 * iac does not carry a formatter of its own: StyLua (the maintained Lua
 * formatter, Lua 5.4 syntax) does the formatting, run as a child process
 * with the file's text on stdin and the result on stdout, so iac alone
 * reads and writes the files: regular files only, never through a symbolic
 * link, replaced atomically, and only when the text changed. Lua's own
 * parser checks the syntax first, so a broken file is reported as
 * `FILE:LINE: what` (the words `iac validate` would use) and left alone.
 *
 * Settings: a stylua.toml (or .stylua.toml) in the file's directory or a
 * parent up to the directory named on the command line is used as is;
 * otherwise iac's own, fixed ones (FMT_DEFAULTS below), so that every
 * machine formats a topology the same way whatever its editor config. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "iac/cli/commands.h"
#include "iac/core/args.h"
#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/proc.h"
#include "iac/core/util.h"

#define FMT_TOOL "stylua"
#define FMT_INSTALL "npm install -g @johnnymorganz/stylua-bin"
#define FMT_TIMEOUT_MS 60000.0

/* iac's canonical settings, chosen to match plans/ and modules/: two
 * spaces, 120 columns, one-line `if ... then return end` guards kept,
 * and call parentheses left as written (StyLua's default would turn
 * `resource "t" "n" { ... }` into `resource("t")("n")({ ... })`). The
 * editorconfig is ignored and an empty config file stands in for a
 * stylua.toml so nothing from the environment changes the result;
 * --verify makes StyLua refuse output whose syntax tree differs. */
#define FMT_DEFAULTS                                                                               \
	"--no-editorconfig --config-path /dev/null --syntax Lua54 --indent-type Spaces --indent-width 2 " \
	"--column-width 120 --line-endings Unix --quote-style AutoPreferDouble --call-parentheses Input " \
	"--collapse-simple-statement ConditionalOnly"

typedef struct {
	int check, diff, recursive;
	int no_color;  /* accepted, as by every command: fmt prints no colour */
	int changed;   /* files that were (or, with -check, would be) rewritten */
	int failed;    /* files that could not be read, parsed or written */
} fmt_run;

/* A formatter found on PATH, so its absence is one clear message instead
 * of one shell error per file. */
static int tool_on_path(void)
{
	const char *path = getenv("PATH");
	int found = 0;
	if (!path || !*path)
		return 0;
	char *copy = iac_xstrdup(path), *save = NULL;
	for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		char *p = iac_path_join(*d ? d : ".", FMT_TOOL);
		found = access(p, X_OK) == 0;
		free(p);
	}
	free(copy);
	return found;
}

static int tool_missing(void)
{
	return iac_err_set("cannot format: StyLua ('" FMT_TOOL "') is not installed; install it with '" FMT_INSTALL
			   "' (or put a StyLua 2.x binary named '" FMT_TOOL "' on PATH)");
}

/* Where the stylua.toml for a file in `dir` is: dir, then its parents up
 * to `top` (both as given, `top` a prefix of `dir`). *cfg_dir gets the
 * directory and *cfg_name the file name (a constant); 0 when none. */
static int find_config(char **cfg_dir, const char **cfg_name, const char *dir, const char *top)
{
	static const char *const names[] = { "stylua.toml", ".stylua.toml" };
	char *d = iac_xstrdup(dir);
	size_t top_len = strlen(top);
	for (;;) {
		for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
			char *p = iac_path_join(d, names[i]);
			struct stat st;
			int ok = lstat(p, &st) == 0 && S_ISREG(st.st_mode);
			free(p);
			if (ok) {
				*cfg_dir = d;
				*cfg_name = names[i];
				return 1;
			}
		}
		if (!strcmp(d, top))
			break;
		char *slash = strrchr(d, '/');
		if (!slash && !strcmp(top, "."))
			strcpy(d, "."); /* "modules" -> "." (names in "." carry no "./") */
		else if (!slash || slash == d || (size_t)(slash - d) < top_len)
			break;
		else
			*slash = '\0';
	}
	free(d);
	return 0;
}

/* Lua 5.4's own parser on the text: `FILE:LINE: what` when it is not
 * valid Lua (the chunk is compiled, never run). */
static int check_syntax(const char *name, const char *text, size_t len)
{
	lua_State *L = luaL_newstate();
	int rc = 0;
	if (!L)
		return iac_err_set("cannot check '%s': out of memory", name);
	if (luaL_loadbufferx(L, text, len, "=", "t") != LUA_OK) {
		/* the chunk name "=" leaves ":LINE: what" for the file's name */
		const char *msg = lua_tostring(L, -1);
		rc = iac_err_set("%s%s%s", name, msg && msg[0] == ':' ? "" : ": ", msg ? msg : "syntax error");
	}
	lua_close(L);
	return rc;
}

/* StyLua's reason for refusing a text: its last "error..." line, and the
 * line number when it gives "(LINE:COL". */
static int tool_error(const char *name, const iac_proc_result *r)
{
	const char *e = r->err && *r->err ? r->err : r->out ? r->out : "";
	const char *at = strstr(e, "error parsing:");
	const char *pos = strstr(e, " (");
	long line = pos ? strtol(pos + 2, NULL, 10) : 0;
	const char *tail = iac_proc_tail(e, 400);
	char *msg = iac_xstrdup(at ? at : iac_str_starts(tail, "error: ") ? tail + 7 : tail);
	char *nl = strchr(msg, '\n');
	if (nl && nl[1] && at)
		memmove(msg, nl + 1, strlen(nl + 1) + 1); /* "error parsing:\n - what" */
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	if (line > 0)
		iac_err_set("%s:%ld: %s (StyLua)", name, line, msg);
	else
		iac_err_set("%s: StyLua failed (exit %d): %s", name, r->status, msg);
	free(msg);
	return IAC_ERR;
}

/* Run StyLua on text with the settings for a file in `dir`; extra flags
 * (check mode for -diff) go before the "-" that reads stdin. */
static int run_tool(iac_proc_result *r, const char *name, const char *dir, const char *top, const char *extra,
		    const char *text)
{
	char *cfg_dir = NULL, *cmd;
	const char *cfg_name = NULL;
	int rc = 0;
	/* the config is named relative to the directory StyLua runs in, so no
	 * path from the disk is ever put into the shell command */
	if (find_config(&cfg_dir, &cfg_name, dir, top))
		cmd = iac_xasprintf(FMT_TOOL " --config-path %s %s -", cfg_name, extra);
	else
		cmd = iac_xasprintf(FMT_TOOL " " FMT_DEFAULTS " %s -", extra);
	if (iac_proc_run(r, cmd, cfg_dir, NULL, text, FMT_TIMEOUT_MS, NULL) < 0)
		rc = iac_err_set("cannot run StyLua for '%s': %s", name, iac_err_last());
	else if (r->status == 127 || r->status == 126)
		rc = tool_missing();
	else if (r->timed_out)
		rc = iac_err_set("StyLua took longer than %.0f s on '%s'; stopped", FMT_TIMEOUT_MS / 1000, name);
	else if (r->out_len >= IAC_PROC_CAPTURE_MAX)
		rc = iac_err_set("'%s' is too large to format (1 MiB at most)", name);
	free(cmd);
	free(cfg_dir);
	return rc;
}

/* StyLua's unified diff of the change ("--- old" / "+++ new"), with the
 * file's name in the headers as `terraform fmt -diff` prints them. */
static int print_diff(const char *name, const char *dir, const char *top, const char *text)
{
	iac_proc_result r;
	if (run_tool(&r, name, dir, top, "--check --output-format Unified --color Never", text) < 0)
		return IAC_ERR;
	const char *body = r.out;
	if (iac_str_starts(body, "--- old\n+++ new\n"))
		body += strlen("--- old\n+++ new\n");
	printf("--- old/%s\n+++ new/%s\n%s", name, name, body);
	iac_proc_result_free(&r);
	return 0;
}

/* The canonical text of `text` into r->out: NUL bytes refused, Lua's
 * parser first (its FILE:LINE), then StyLua with --verify. */
static int format_text(iac_proc_result *r, const char *name, const char *dir, const char *top, const char *text,
		       size_t len)
{
	if (strlen(text) != len)
		return iac_err_set("'%s' contains a NUL byte; not a topology file", name);
	if (check_syntax(name, text, len) < 0 || run_tool(r, name, dir, top, "--verify", text) < 0)
		return IAC_ERR;
	return r->status ? tool_error(name, r) : 0;
}

/* One file: read (no link followed), format, compare, and write or
 * report. `dir` is the file's directory, `top` the directory the run
 * started from (where stylua.toml is looked for last). */
static int fmt_file(fmt_run *run, const char *name, const char *dir, const char *top)
{
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	iac_proc_result r = { 0 };
	int rc = IAC_ERR;

	if (iac_file_read_flags(&text, &len, &st, name, O_NOFOLLOW) < 0)
		goto done;
	if (!S_ISREG(st.st_mode)) {
		iac_err_set("'%s' is not a regular file", name);
		goto done;
	}
	if (format_text(&r, name, dir, top, text, len) < 0)
		goto done;
	rc = 0;
	if (r.out_len == len && !memcmp(r.out, text, len))
		goto done;
	run->changed++;
	if (!run->check && iac_file_write_atomic(name, r.out, r.out_len, st.st_mode & 07777) < 0) {
		rc = IAC_ERR;
		goto done;
	}
	printf("%s\n", name);
	if (run->diff)
		rc = print_diff(name, dir, top, text);
	fflush(stdout);
done:
	if (rc < 0) {
		iac_log_error("%s", iac_err_last());
		run->failed++;
	}
	iac_proc_result_free(&r);
	free(text);
	return rc;
}

/* `iac fmt -` (editors): stdin to stdout, the current directory's
 * stylua.toml; with -check nothing is printed, the exit status tells. */
static void fmt_stdin(fmt_run *run)
{
	iac_buf in = IAC_BUF_INIT;
	iac_proc_result r = { 0 };
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		iac_buf_put(&in, chunk, n);
	if (format_text(&r, "<stdin>", ".", ".", iac_buf_cstr(&in), in.len) < 0) {
		iac_log_error("%s", iac_err_last());
		run->failed++;
	} else if (r.out_len != in.len || memcmp(r.out, iac_buf_cstr(&in), in.len)) {
		run->changed++;
	}
	if (!run->failed && !run->check)
		fwrite(r.out, 1, r.out_len, stdout);
	iac_proc_result_free(&r);
	iac_buf_free(&in);
}

static int is_lua(const char *name)
{
	size_t n = strlen(name);
	return n > 4 && !strcmp(name + n - 4, ".lua");
}

/* The *.lua files of dir in name order and, with -recursive, those of its
 * subdirectories. Hidden entries (.iac, .git) are skipped, and so are
 * symbolic links: formatting never leaves the tree through one, nor
 * rewrites the file one points to. */
static void fmt_dir(fmt_run *run, const char *dir, const char *top)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0) {
		iac_log_error("cannot read directory '%s': %s", dir, strerror(errno));
		run->failed++;
		return;
	}
	for (int pass = 0; pass < 2; pass++) /* files first, then subdirectories */
		for (int i = 0; i < n; i++) {
			const char *e = ents[i]->d_name;
			struct stat st;
			if (e[0] == '.')
				continue;
			char *p = iac_path_join(dir, e); /* "name" in ".", as terraform fmt prints */
			if (lstat(p, &st) < 0)
				; /* gone meanwhile */
			else if (pass == 0 && S_ISLNK(st.st_mode) && is_lua(e))
				iac_log_warn("skipping '%s': a symbolic link (iac fmt formats the file itself, where it is)",
					     p);
			else if (pass == 0 && S_ISREG(st.st_mode) && is_lua(e))
				fmt_file(run, p, dir, top);
			else if (pass == 1 && S_ISDIR(st.st_mode) && run->recursive)
				fmt_dir(run, p, top);
			else if (pass == 1 && S_ISLNK(st.st_mode) && run->recursive && stat(p, &st) == 0 &&
				 S_ISDIR(st.st_mode))
				iac_log_warn("skipping '%s': a symbolic link to a directory (never followed)", p);
			free(p);
		}
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
}

/* A path from the command line: a directory, or a file named on purpose
 * (any extension); never a symbolic link. */
static void fmt_path(fmt_run *run, const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		iac_log_error("cannot format '%s': %s", path, strerror(errno));
		run->failed++;
	} else if (S_ISLNK(st.st_mode)) {
		iac_log_error("'%s' is a symbolic link; iac fmt does not follow links (name the file itself)", path);
		run->failed++;
	} else if (S_ISDIR(st.st_mode)) {
		char *dir = iac_xstrdup(path);
		size_t n = strlen(dir);
		while (n > 1 && dir[n - 1] == '/')
			dir[--n] = '\0'; /* "plans/demo/" and "plans/demo" name files alike */
		fmt_dir(run, dir, dir);
		free(dir);
	} else if (S_ISREG(st.st_mode)) {
		char *dir = iac_xstrdup(path), *slash = strrchr(dir, '/');
		if (!slash)
			strcpy(dir, ".");
		else if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
		fmt_file(run, path, dir, dir);
		free(dir);
	} else {
		iac_log_error("cannot format '%s': not a file or directory", path);
		run->failed++;
	}
}

static fmt_run opts_run;

static const iac_opt fmt_opts[] = {
	{ "check", IAC_OPT_BOOL, &opts_run.check,
	  "change nothing; list files that are not formatted and exit 3 if there are any" },
	{ "diff", IAC_OPT_BOOL, &opts_run.diff, "show the changes as a unified diff" },
	{ "recursive", IAC_OPT_BOOL, &opts_run.recursive, "also format the subdirectories (modules/, ...)" },
	{ "no-color", IAC_OPT_BOOL, &opts_run.no_color, "no colour in output" },
	{ NULL, 0, NULL, NULL },
};

int iac_cmd_fmt(int argc, char **argv)
{
	iac_strlist pos = { 0 };
	fmt_run *run = &opts_run;
	int rc = 1;

	if (iac_args_parse(fmt_opts, "fmt", argc, argv, &pos) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	if (!tool_on_path()) {
		tool_missing();
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	if (pos.n == 0)
		fmt_path(run, ".");
	for (size_t i = 0; i < pos.n; i++)
		if (!strcmp(pos.items[i], "-"))
			fmt_stdin(run);
		else
			fmt_path(run, pos.items[i]);
	rc = run->failed ? 1 : run->check && run->changed ? 3 : 0;
done:
	iac_strlist_free(&pos);
	return rc;
}

void iac_help_fmt(void)
{
	printf("\nusage: iac fmt [-check] [-diff] [-recursive] [PATH...]\n\n"
	       "Rewrites the *.lua files of the configuration directory (PATH: directories or\n"
	       "files; default the current directory) in the canonical layout and prints the\n"
	       "names of the files it changed. Formatting is done by StyLua (install:\n"
	       "'" FMT_INSTALL "'); a stylua.toml or .stylua.toml in the\n"
	       "directory is used when there is one, otherwise iac's settings: 2 spaces,\n"
	       "120 columns, call parentheses as written. Files are replaced atomically;\n"
	       "symbolic links are skipped, never followed. A file with a syntax error is\n"
	       "reported as FILE:LINE and left as it is. PATH '-' formats stdin to stdout.\n\n"
	       "Exit status: 0 formatted, 1 an error, 3 with -check when a file is not\n"
	       "formatted (as terraform fmt -check).\n\n");
	iac_args_usage(fmt_opts);
}
