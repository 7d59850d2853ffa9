/* args: Terraform-style flag parsing (see args.h). */
#include "iac/core/args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/util.h"

void iac_strlist_push(iac_strlist *l, const char *s)
{
	if (l->n + 2 > l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->items = iac_xrealloc(l->items, l->cap * sizeof(*l->items));
	}
	l->items[l->n++] = iac_xstrdup(s);
	l->items[l->n] = NULL;
}

void iac_strlist_free(iac_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
	l->cap = 0;
}

static const iac_opt *find_opt(const iac_opt *opts, const char *name, size_t len)
{
	for (const iac_opt *o = opts; o && o->name; o++)
		if (strlen(o->name) == len && !strncmp(o->name, name, len))
			return o;
	return NULL;
}

static int set_value(const iac_opt *o, const char *command, const char *val)
{
	char *end;
	switch (o->kind) {
	case IAC_OPT_BOOL:
		if (!val || !strcmp(val, "true") || !strcmp(val, "1"))
			*(int *)o->dest = 1;
		else if (!strcmp(val, "false") || !strcmp(val, "0"))
			*(int *)o->dest = 0;
		else
			return iac_err_set("flag '-%s' of 'iac %s' takes true or false, not '%s'", o->name, command, val);
		return 0;
	case IAC_OPT_STRING:
		*(const char **)o->dest = val;
		return 0;
	case IAC_OPT_INT: {
		errno = 0;
		long v = strtol(val, &end, 10);
		if (!*val || *end)
			return iac_err_set("flag '-%s' of 'iac %s' needs a whole number, not '%s'", o->name, command, val);
		if (errno == ERANGE || v > INT_MAX || v < INT_MIN)
			return iac_err_set("flag '-%s' of 'iac %s': '%s' is too large", o->name, command, val);
		*(int *)o->dest = (int)v;
		return 0;
	}
	case IAC_OPT_DOUBLE: {
		double v = strtod(val, &end);
		if (!*val || *end || !isfinite(v))
			return iac_err_set("flag '-%s' of 'iac %s' needs a number, not '%s'", o->name, command, val);
		*(double *)o->dest = v;
		return 0;
	}
	case IAC_OPT_LIST:
		iac_strlist_push((iac_strlist *)o->dest, val);
		return 0;
	case IAC_OPT_DURATION:
		if (iac_duration_parse((double *)o->dest, val) < 0) {
			iac_err_prefix("flag '-%s' of 'iac %s'", o->name, command);
			return IAC_ERR;
		}
		return 0;
	}
	return 0;
}

static int unknown_flag(const iac_opt *opts, const char *command, const char *name, size_t nlen)
{
	char want[64], hint[128];
	const char *names[128];
	size_t n = 0;
	if (nlen == 5 && !strncmp(name, "chdir", 5))
		return iac_err_set("-chdir goes before the command: iac -chdir=DIR %s ...", command);
	snprintf(want, sizeof(want), "%.*s", (int)nlen, name);
	for (const iac_opt *o = opts; o && o->name && n < 128; o++)
		names[n++] = o->name;
	const char *pick = iac_suggest(want, names, n);
	if (pick)
		snprintf(hint, sizeof(hint), " (did you mean '-%s'?)", pick);
	else
		hint[0] = '\0';
	return iac_err_set("unknown flag '-%s' for 'iac %s'%s; see 'iac help %s'", want, command, hint, command);
}

int iac_args_parse(const iac_opt *opts, const char *command, int argc, char **argv, iac_strlist *pos)
{
	int only_pos = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (only_pos || a[0] != '-' || !a[1]) {
			iac_strlist_push(pos, a);
			continue;
		}
		if (!strcmp(a, "--")) {
			only_pos = 1;
			continue;
		}
		const char *name = a + (a[1] == '-' ? 2 : 1);
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const iac_opt *o = find_opt(opts, name, nlen);
		if (!o)
			return unknown_flag(opts, command, name, nlen);
		const char *val = eq ? eq + 1 : NULL;
		if (!val && o->kind != IAC_OPT_BOOL) {
			if (i + 1 >= argc)
				return iac_err_set("flag '-%s' of 'iac %s' needs a value", o->name, command);
			val = argv[++i];
		}
		if (set_value(o, command, val) < 0)
			return IAC_ERR;
	}
	return 0;
}

void iac_args_usage_with(const iac_opt *opts, const char *(*metavar)(const char *name))
{
	for (const iac_opt *o = opts; o && o->name; o++) {
		const char *arg = metavar ? metavar(o->name) : NULL;
		if (!arg)
			arg = o->kind == IAC_OPT_BOOL ? "" : o->kind == IAC_OPT_DURATION ? "DURATION"
			      : o->kind == IAC_OPT_INT ? "N" : "VALUE";
		char left[64];
		snprintf(left, sizeof(left), "-%s%s%s", o->name, *arg ? " " : "", arg);
		printf("  %-24s %s\n", left, o->help ? o->help : "");
	}
}

void iac_args_usage(const iac_opt *opts)
{
	iac_args_usage_with(opts, NULL);
}
