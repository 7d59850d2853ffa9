/* iac-flags-eval: a test driver for iac/flags, used by tests/flags/test_*.sh scripts.
 *
 *   iac-flags-eval to-flagd SPECS.json          {NAME: SPEC} -> flagd JSON on stdout
 *   iac-flags-eval eval FLAGD.json FLAG [ATTR]  one key per stdin line -> one variant per line;
 *                                               the key goes into targetingKey and ATTR
 *   iac-flags-eval moves OLD.json NEW.json FLAG  who moves between two flagd documents
 *   iac-flags-eval hash STRING [TOTAL]           murmur3 and bucket of STRING
 * Exit 0 ok, 1 error (message on stderr).
 */
#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/flags/flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *load(const char *path)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, 0, &jerr);
	if (!j)
		fprintf(stderr, "error: %s:%d: %s\n", path, jerr.line, jerr.text);
	return j;
}

static int cmd_eval(const char *path, const char *flag, const char *attr)
{
	json_t *doc = load(path);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	if (!doc)
		return 1;
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		const char *variant;
		json_t *value, *ctx;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		ctx = json_pack("{s:s}", "targetingKey", line);
		if (attr)
			json_object_set_new(ctx, attr, json_string(line));
		int r = iac_flags_eval(&variant, &value, doc, flag, ctx);
		json_decref(ctx);
		if (r < 0) {
			fprintf(stderr, "error: %s\n", iac_err_last());
			rc = 1;
			break;
		}
		puts(variant ? variant : "(disabled)");
		json_decref(value);
	}
	free(line);
	json_decref(doc);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "to-flagd") == 0) {
		json_t *specs = load(argv[2]), *doc;
		if (!specs)
			return 1;
		if (iac_flags_to_flagd(&doc, specs) < 0) {
			fprintf(stderr, "error: %s\n", iac_err_last());
			json_decref(specs);
			return 1;
		}
		char *s = iac_flags_dump(doc);
		fputs(s, stdout);
		free(s);
		json_decref(doc);
		json_decref(specs);
		return 0;
	}
	if (argc >= 4 && strcmp(argv[1], "eval") == 0)
		return cmd_eval(argv[2], argv[3], argc > 4 ? argv[4] : NULL);
	if (argc >= 5 && strcmp(argv[1], "moves") == 0) {
		json_t *a = load(argv[2]), *b = load(argv[3]), *moves;
		int rc = 1;
		if (a && b) {
			json_t *fa = json_object_get(json_object_get(a, "flags"), argv[4]);
			json_t *fb = json_object_get(json_object_get(b, "flags"), argv[4]);
			if (iac_flags_moves(&moves, fa, fb) == 0) {
				char *s = json_dumps(moves, JSON_COMPACT);
				puts(s);
				free(s);
				json_decref(moves);
				rc = 0;
			} else {
				fprintf(stderr, "error: %s\n", iac_err_last());
			}
			if (rc == 0 && iac_flags_check_sticky(argv[4], fa, fb) < 0) {
				fprintf(stderr, "error: %s\n", iac_err_last());
				rc = 2;
			}
		}
		json_decref(a);
		json_decref(b);
		return rc;
	}
	if (argc >= 3 && strcmp(argv[1], "hash") == 0) {
		uint32_t h = iac_flags_hash(argv[2], strlen(argv[2]));
		uint32_t total = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 100;
		printf("%u %u\n", h, iac_flags_bucket(h, total));
		return 0;
	}
	fprintf(stderr, "usage: iac-flags-eval to-flagd SPECS.json | eval FLAGD.json FLAG [ATTR] | "
			"moves OLD.json NEW.json FLAG | hash STRING [TOTAL]\n");
	return 1;
}
