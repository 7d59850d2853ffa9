/* Unit tests for iac/flags: murmur3, spec -> flagd JSON, validation, the
 * evaluator, stickiness and who-moves. The compatibility test against the
 * real @openfeature/flagd-core is tests/flags/test_flagd_compat.sh. */
#include "harness.h"

#include "iac/core/err.h"
#include "iac/flags/flags.h"

#include <math.h>
#include <stdlib.h>

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	if (!j)
		fprintf(stderr, "bad test JSON: %s: %s\n", jerr.text, text);
	return j;
}

static char *compact(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}

/* flagd document for one flag given as spec JSON text. */
static json_t *doc_of(const char *name, const char *spec_text)
{
	json_t *specs = json_object(), *doc = NULL;
	json_object_set_new(specs, name, parse(spec_text));
	if (iac_flags_to_flagd(&doc, specs) < 0)
		fprintf(stderr, "unexpected error: %s\n", iac_err_last());
	json_decref(specs);
	return doc;
}

static void expect_error(const char *spec_text, const char *message)
{
	json_t *specs = json_object(), *doc = NULL;
	json_object_set_new(specs, "checkout_v2", parse(spec_text));
	CHECK_INT(iac_flags_to_flagd(&doc, specs), -1);
	CHECK(doc == NULL);
	CHECK_STR(iac_err_last(), message);
	json_decref(specs);
}

static const char *variant_of(const json_t *doc, const char *flag, const char *key, const char *attr)
{
	const char *variant = NULL;
	json_t *value = NULL, *ctx = json_pack("{s:s}", "targetingKey", key);
	if (attr)
		json_object_set_new(ctx, attr, json_string(key));
	if (iac_flags_eval(&variant, &value, doc, flag, ctx) < 0)
		fprintf(stderr, "eval error: %s\n", iac_err_last());
	json_decref(value);
	json_decref(ctx);
	return variant;
}

static void test_murmur3_vectors(void)
{
	/* Reference values of MurmurHash3_x86_32 (SMHasher), also what the
	 * imurmurhash package inside flagd-core returns for these inputs. */
	CHECK_INT(iac_murmur3_32("", 0, 0), 0);
	CHECK_INT(iac_murmur3_32("", 0, 1), 0x514E28B7u);
	CHECK_INT(iac_murmur3_32("", 0, 0xffffffffu), 0x81F16F39u);
	CHECK_INT(iac_murmur3_32("\0\0\0\0", 4, 0), 0x2362F9DEu);
	CHECK_INT(iac_murmur3_32("aaaa", 4, 0x9747b28cu), 0x5A97808Au);
	CHECK_INT(iac_murmur3_32("a", 1, 0x9747b28cu), 0x7FA09EA6u);
	CHECK_INT(iac_murmur3_32("ab", 2, 0x9747b28cu), 0x74875592u);
	CHECK_INT(iac_murmur3_32("abc", 3, 0x9747b28cu), 0xC84A62DDu);
	CHECK_INT(iac_murmur3_32("abcd", 4, 0x9747b28cu), 0xF0478627u);
	CHECK_INT(iac_murmur3_32("abc", 3, 0), 0xB3DD93FAu);
	CHECK_INT(iac_murmur3_32("Hello, world!", 13, 0x9747b28cu), 0x24884CBAu);
	const char *fox = "The quick brown fox jumps over the lazy dog";
	CHECK_INT(iac_murmur3_32(fox, strlen(fox), 0x9747b28cu), 0x2FA826CDu);
	CHECK_INT(iac_flags_hash("hello", 5), 613153351u);
	CHECK_INT(iac_flags_hash("checkout_v2user-1", 17), 0x0e758aceu);
	/* bucket = (hash * total) >> 32, flagd-core's mapping */
	CHECK_INT(iac_flags_bucket(0x0e758aceu, 100), 5);
	CHECK_INT(iac_flags_bucket(0xffffffffu, 100), 99);
	CHECK_INT(iac_flags_bucket(0, 100), 0);
	CHECK_INT(iac_flags_bucket(613153351u, 100), 14);
}

static void test_flagd_json(void)
{
	json_t *doc = doc_of("checkout_v2",
			     "{\"kind\": \"release\", \"variants\": {\"on\": true, \"off\": false}, \"default\": \"off\","
			     " \"rollout\": {\"on\": 10}, \"targeting_key\": \"userId\", \"description\": \"new checkout\","
			     " \"deliver\": {\"file\": {\"path\": \"/etc/app/flags.json\"}}}");
	char *s = compact(doc);
	CHECK_STR(s, "{\"$schema\":\"https://flagd.dev/schema/v0/flags.json\",\"flags\":{\"checkout_v2\":{"
		     "\"defaultVariant\":\"off\",\"metadata\":{\"description\":\"new checkout\",\"kind\":\"release\","
		     "\"targetingKey\":\"userId\"},\"state\":\"ENABLED\",\"targeting\":{\"fractional\":["
		     "{\"cat\":[{\"var\":\"$flagd.flagKey\"},{\"var\":\"userId\"}]},[\"on\",10],[\"off\",90]]},"
		     "\"variants\":{\"off\":false,\"on\":true}}}}");
	free(s);

	/* The text form is canonical: same flags, any key order, same bytes. */
	json_t *a = parse("{\"b\": {\"default\": \"x\", \"variants\": {\"y\": \"Y\", \"x\": \"X\"}, \"rollout\": {\"y\": 5}},"
			  " \"a\": {\"default\": \"on\", \"kind\": \"kill-switch\"}}");
	json_t *b = parse("{\"a\": {\"kind\": \"kill-switch\", \"default\": \"on\"},"
			  " \"b\": {\"rollout\": {\"y\": 5}, \"variants\": {\"x\": \"X\", \"y\": \"Y\"}, \"default\": \"x\"}}");
	json_t *da, *db;
	CHECK_INT(iac_flags_to_flagd(&da, a), 0);
	CHECK_INT(iac_flags_to_flagd(&db, b), 0);
	char *ta = iac_flags_dump(da), *tb = iac_flags_dump(db);
	CHECK_STR(ta, tb);
	CHECK_CONTAINS(ta, "\"kind\": \"kill_switch\"");
	CHECK(ta[strlen(ta) - 1] == '\n');
	free(ta);
	free(tb);

	/* Implicit targetingKey: flagd's own flagKey + targetingKey bucketing. */
	json_t *f = json_object_get(json_object_get(da, "flags"), "b");
	s = compact(json_object_get(f, "targeting"));
	CHECK_STR(s, "{\"fractional\":[[\"y\",5],[\"x\",95]]}");
	free(s);
	/* No rollout: no targeting at all; default variants on/off. */
	f = json_object_get(json_object_get(da, "flags"), "a");
	CHECK(json_object_get(f, "targeting") == NULL);
	s = compact(json_object_get(f, "variants"));
	CHECK_STR(s, "{\"off\":false,\"on\":true}");
	free(s);
	json_decref(a);
	json_decref(b);
	json_decref(da);
	json_decref(db);
	json_decref(doc);

	/* Several rollout variants: name order, default last; decimals scale
	 * the weights to hundredths of a percent. */
	doc = doc_of("color", "{\"kind\": \"experiment\", \"variants\": {\"red\": \"r\", \"green\": \"g\", \"blue\": \"b\"},"
			      " \"default\": \"blue\", \"rollout\": {\"red\": 33.33, \"green\": 20}, \"enabled\": false}");
	f = json_object_get(json_object_get(doc, "flags"), "color");
	s = compact(json_object_get(f, "targeting"));
	CHECK_STR(s, "{\"fractional\":[[\"green\",2000],[\"red\",3333],[\"blue\",4667]]}");
	free(s);
	CHECK_STR(json_string_value(json_object_get(f, "state")), "DISABLED");
	json_decref(doc);

	/* Object and number variants are kept as they are. */
	doc = doc_of("limits", "{\"variants\": {\"small\": {\"max\": 10}, \"big\": {\"max\": 1000}}, \"default\": \"small\","
			       " \"kind\": \"operational\"}");
	f = json_object_get(json_object_get(doc, "flags"), "limits");
	s = compact(json_object_get(f, "variants"));
	CHECK_STR(s, "{\"big\":{\"max\":1000},\"small\":{\"max\":10}}");
	free(s);
	json_decref(doc);
}

static void test_validation(void)
{
	expect_error("{\"variants\": {\"on\": true, \"off\": false}, \"default\": \"off\", \"rollout\": {\"on\": 120}}",
		     "flag 'checkout_v2': rollout percent for 'on' is 120, must be 0..100");
	expect_error("{\"variants\": {\"on\": true, \"off\": false}, \"default\": \"off\", \"rollout\": {\"on\": -1}}",
		     "flag 'checkout_v2': rollout percent for 'on' is -1, must be 0..100");
	expect_error("{\"variants\": {\"a\": 1, \"b\": 2, \"c\": 3}, \"default\": \"c\", \"rollout\": {\"a\": 60, \"b\": 50}}",
		     "flag 'checkout_v2': rollout percents add up to 110, must be at most 100");
	expect_error("{\"variants\": {\"on\": true, \"off\": false}, \"default\": \"off\", \"rolout\": {\"on\": 1}}",
		     "flag 'checkout_v2': unknown attribute 'rolout'");
	expect_error("{\"variants\": {\"on\": true, \"off\": false}, \"default\": \"of\"}",
		     "flag 'checkout_v2': default 'of' is not one of its variants");
	expect_error("{\"variants\": {\"on\": true, \"off\": false}}",
		     "flag 'checkout_v2': default is missing; name the variant users get when no rollout applies");
	expect_error("{\"variants\": {\"on\": true, \"off\": \"no\"}, \"default\": \"off\"}",
		     "flag 'checkout_v2': variant 'on' is a boolean but 'off' is a string; all variants of a flag have one type");
	expect_error("{\"variants\": {\"on\": [1], \"off\": false}, \"default\": \"off\"}",
		     "flag 'checkout_v2': variant 'on' is a list; variants are booleans, strings, numbers or tables");
	expect_error("{\"variants\": {}, \"default\": \"off\"}",
		     "flag 'checkout_v2': variants is empty; declare at least one variant");
	expect_error("{\"kind\": \"kill_switch\", \"default\": \"on\", \"rollout\": {\"off\": 10}}",
		     "flag 'checkout_v2': a kill_switch flag cannot have a rollout; it is on or off for everyone (set default)");
	expect_error("{\"kind\": \"canary\", \"default\": \"on\"}",
		     "flag 'checkout_v2': kind is 'canary', must be release, experiment, operational or kill_switch");
	expect_error("{\"default\": \"off\", \"rollout\": {\"off\": 10}}",
		     "flag 'checkout_v2': rollout names the default variant 'off'; the default gets what the rollout leaves");
	expect_error("{\"default\": \"off\", \"rollout\": {\"maybe\": 10}}",
		     "flag 'checkout_v2': rollout names variant 'maybe', which is not one of its variants");
	expect_error("{\"default\": \"off\", \"rollout\": {\"on\": 12.345}}",
		     "flag 'checkout_v2': rollout percent for 'on' is 12.345; use at most two decimals");
	expect_error("{\"default\": \"off\", \"rollout\": {\"on\": \"10%\"}}",
		     "flag 'checkout_v2': rollout percent for 'on' must be a number");
	expect_error("{\"default\": true}",
		     "flag 'checkout_v2': default must be the name of a variant (a string), got a boolean");
	expect_error("{\"default\": \"off\", \"targeting_key\": \"\"}",
		     "flag 'checkout_v2': targeting_key must be a non-empty string (the context attribute to bucket by)");
	expect_error("{\"default\": \"off\", \"enabled\": \"yes\"}",
		     "flag 'checkout_v2': enabled must be true or false");

	/* Where the loader saw the flag prefixes the message. */
	expect_error("{\"default\": \"off\", \"rollout\": {\"on\": 120}, \"file\": \"main.lua\", \"line\": 12}",
		     "main.lua:12: flag 'checkout_v2': rollout percent for 'on' is 120, must be 0..100");
	expect_error("{\"default\": \"off\", \"description\": {\"$iac\": \"ref\", \"addr\": \"x.y\", \"attr\": \"z\"}}",
		     "flag 'checkout_v2': description depends on a value known only at apply time; flags need plain values");
	expect_error("{\"variants\": {\"on\": {\"$iac\": \"sensitive\", \"value\": \"s3cret\"}, \"off\": \"x\"}, \"default\": \"off\"}",
		     "flag 'checkout_v2': variants is sensitive; flag files are not secret, keep secrets out of flags");

	json_t *specs = parse("{\"bad name\": {\"default\": \"off\"}}"), *doc;
	CHECK_INT(iac_flags_to_flagd(&doc, specs), -1);
	CHECK_CONTAINS(iac_err_last(), "flag 'bad name': invalid name");
	json_decref(specs);
}

static void test_eval(void)
{
	json_t *doc = doc_of("checkout_v2", "{\"default\": \"off\", \"rollout\": {\"on\": 10}, \"targeting_key\": \"userId\"}");
	const char *variant;
	json_t *value;

	/* hash("checkout_v2user-1") lands in bucket 5 of 100: "on". */
	json_t *ctx = parse("{\"userId\": \"user-1\"}");
	CHECK_INT(iac_flags_eval(&variant, &value, doc, "checkout_v2", ctx), 0);
	CHECK_STR(variant, "on");
	CHECK(json_is_true(value));
	json_decref(value);
	json_decref(ctx);

	/* Every key: the variant is what the formula gives. */
	int on = 0;
	for (int i = 0; i < 10000; i++) {
		char key[32], bucket_by[64];
		snprintf(key, sizeof(key), "user-%d", i);
		snprintf(bucket_by, sizeof(bucket_by), "checkout_v2%s", key);
		uint32_t bucket = iac_flags_bucket(iac_flags_hash(bucket_by, strlen(bucket_by)), 100);
		const char *v = variant_of(doc, "checkout_v2", key, "userId");
		CHECK_STR(v, bucket < 10 ? "on" : "off");
		on += v && strcmp(v, "on") == 0;
	}
	CHECK(on > 850 && on < 1150);

	/* A context without userId buckets "checkout_v2null", like flagd-core. */
	uint32_t b = iac_flags_bucket(iac_flags_hash("checkout_v2null", 15), 100);
	CHECK_INT(iac_flags_eval(&variant, &value, doc, "checkout_v2", NULL), 0);
	CHECK_STR(variant, b < 10 ? "on" : "off");
	json_decref(value);
	/* Numbers are bucketed by their JavaScript text. */
	ctx = parse("{\"userId\": 1.5}");
	b = iac_flags_bucket(iac_flags_hash("checkout_v21.5", 14), 100);
	CHECK_INT(iac_flags_eval(&variant, &value, doc, "checkout_v2", ctx), 0);
	CHECK_STR(variant, b < 10 ? "on" : "off");
	json_decref(value);
	json_decref(ctx);

	CHECK_INT(iac_flags_eval(&variant, &value, doc, "nope", NULL), IAC_ENOTFOUND);
	json_decref(doc);

	/* Implicit bucketing: no targetingKey, no match: the default. */
	doc = doc_of("f", "{\"default\": \"off\", \"rollout\": {\"on\": 100}}");
	CHECK_INT(iac_flags_eval(&variant, &value, doc, "f", NULL), 0);
	CHECK_STR(variant, "off");
	json_decref(value);
	CHECK_STR(variant_of(doc, "f", "anyone", NULL), "on");
	json_decref(doc);

	/* Disabled: no variant, the application's code default applies. */
	doc = doc_of("f", "{\"default\": \"on\", \"enabled\": false}");
	CHECK_INT(iac_flags_eval(&variant, &value, doc, "f", NULL), 0);
	CHECK(variant == NULL && value == NULL);
	json_decref(doc);

	/* Hand-written targeting iac also understands. */
	doc = parse("{\"flags\": {\"g\": {\"state\": \"ENABLED\", \"defaultVariant\": \"off\","
		    " \"variants\": {\"on\": true, \"off\": false},"
		    " \"targeting\": {\"if\": [{\"in\": [{\"var\": \"email\"}, [\"a@x\", \"b@x\"]]}, \"on\","
		    "   {\"fractional\": [[\"on\", 0], [\"off\", 1]]}]}}}}");
	ctx = parse("{\"email\": \"b@x\"}");
	CHECK_INT(iac_flags_eval(&variant, &value, doc, "g", ctx), 0);
	CHECK_STR(variant, "on");
	json_decref(value);
	json_decref(ctx);
	CHECK_STR(variant_of(doc, "g", "zz", NULL), "off");
	json_decref(doc);

	doc = parse("{\"flags\": {\"g\": {\"state\": \"ENABLED\", \"defaultVariant\": \"off\","
		    " \"variants\": {\"on\": true, \"off\": false}, \"targeting\": {\"sem_ver\": [\"1.0.0\", \">\", \"0.1\"]}}}}");
	CHECK_INT(iac_flags_eval(&variant, &value, doc, "g", NULL), -1);
	CHECK_CONTAINS(iac_err_last(), "targeting operator 'sem_ver' is not supported");
	json_decref(doc);
}

/* Raising a percent only adds users: for every percent step and every key,
 * a key that had the rollout variant keeps it. */
static void test_stickiness(void)
{
	enum { KEYS = 3000 };
	static char had[KEYS];
	memset(had, 0, sizeof(had));
	for (int pct = 0; pct <= 100; pct += 5) {
		char spec[160];
		snprintf(spec, sizeof(spec), "{\"default\": \"off\", \"rollout\": {\"on\": %d}, \"targeting_key\": \"userId\"}", pct);
		json_t *doc = doc_of("checkout_v2", spec);
		int on = 0;
		for (int i = 0; i < KEYS; i++) {
			char key[32];
			snprintf(key, sizeof(key), "u%d", i);
			int is_on = strcmp(variant_of(doc, "checkout_v2", key, "userId"), "on") == 0;
			if (had[i] && !is_on) {
				fprintf(stderr, "key %s lost 'on' at %d%%\n", key, pct);
				iac_test_failures++;
			}
			had[i] |= (char)is_on;
			on += is_on;
		}
		CHECK(abs(on - KEYS * pct / 100) < KEYS * 3 / 100);
		json_decref(doc);
	}

	/* Decimal percents sit exactly between the integer layouts. */
	json_t *d12 = doc_of("f", "{\"default\": \"off\", \"rollout\": {\"on\": 12}}");
	json_t *d125 = doc_of("f", "{\"default\": \"off\", \"rollout\": {\"on\": 12.5}}");
	json_t *d13 = doc_of("f", "{\"default\": \"off\", \"rollout\": {\"on\": 13}}");
	for (int i = 0; i < KEYS; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%d", i);
		int a = strcmp(variant_of(d12, "f", key, NULL), "on") == 0;
		int b = strcmp(variant_of(d125, "f", key, NULL), "on") == 0;
		int c = strcmp(variant_of(d13, "f", key, NULL), "on") == 0;
		CHECK(!a || b);
		CHECK(!b || c);
	}
	json_decref(d12);
	json_decref(d125);
	json_decref(d13);
}

static double share_of(const json_t *moves, const char *from, const char *to)
{
	size_t i;
	json_t *m;
	json_array_foreach(moves, i, m) {
		if (strcmp(json_string_value(json_object_get(m, "from")), from) == 0 &&
		    strcmp(json_string_value(json_object_get(m, "to")), to) == 0)
			return json_real_value(json_object_get(m, "share"));
	}
	return 0;
}

static json_t *flag_of(json_t *doc, const char *name)
{
	return json_object_get(json_object_get(doc, "flags"), name);
}

static void test_moves_and_sticky(void)
{
	json_t *d10 = doc_of("f", "{\"default\": \"off\", \"rollout\": {\"on\": 10}, \"sticky\": true}");
	json_t *d20 = doc_of("f", "{\"default\": \"off\", \"rollout\": {\"on\": 20}, \"sticky\": true}");
	json_t *dall = doc_of("f", "{\"default\": \"on\", \"sticky\": true}");
	json_t *moves;

	CHECK_INT(iac_flags_moves(&moves, flag_of(d10, "f"), flag_of(d20, "f")), 0);
	CHECK_INT(json_array_size(moves), 1);
	CHECK(fabs(share_of(moves, "off", "on") - 0.10) < 1e-6);
	json_decref(moves);
	CHECK_INT(iac_flags_check_sticky("f", flag_of(d10, "f"), flag_of(d20, "f")), 0);
	CHECK_INT(iac_flags_check_sticky("f", flag_of(d20, "f"), flag_of(dall, "f")), 0);

	/* Going down takes users back: refused for a sticky flag. */
	CHECK_INT(iac_flags_check_sticky("f", flag_of(d20, "f"), flag_of(d10, "f")), -1);
	CHECK_STR(iac_err_last(), "flag 'f': 10.00% of users would leave 'on' for 'off', but the flag is sticky "
				  "(once on, stays on); raise percents only, or set sticky = false to take users back");
	CHECK_INT(iac_flags_check_sticky("f", flag_of(dall, "f"), flag_of(d10, "f")), 0); /* 'on' was the default */
	json_decref(d10);
	json_decref(d20);
	json_decref(dall);

	/* Several variants: raising the last rollout variant only takes from
	 * the default; raising an earlier one shifts the later ones. */
	json_t *a = doc_of("x", "{\"variants\": {\"a\": 1, \"b\": 2, \"c\": 3}, \"default\": \"c\", \"rollout\": {\"a\": 10, \"b\": 10}}");
	json_t *b = doc_of("x", "{\"variants\": {\"a\": 1, \"b\": 2, \"c\": 3}, \"default\": \"c\", \"rollout\": {\"a\": 10, \"b\": 20}}");
	json_t *c = doc_of("x", "{\"variants\": {\"a\": 1, \"b\": 2, \"c\": 3}, \"default\": \"c\", \"rollout\": {\"a\": 20, \"b\": 20}}");
	CHECK_INT(iac_flags_moves(&moves, flag_of(a, "x"), flag_of(b, "x")), 0);
	CHECK_INT(json_array_size(moves), 1);
	CHECK(fabs(share_of(moves, "c", "b") - 0.10) < 1e-6);
	json_decref(moves);
	CHECK_INT(iac_flags_moves(&moves, flag_of(b, "x"), flag_of(c, "x")), 0);
	CHECK(fabs(share_of(moves, "b", "a") - 0.10) < 1e-6);
	CHECK(fabs(share_of(moves, "c", "b") - 0.10) < 1e-6);
	json_decref(moves);
	json_decref(a);
	json_decref(b);
	json_decref(c);

	/* Changing the bucketing attribute reshuffles everyone. */
	json_t *u = doc_of("f", "{\"default\": \"off\", \"rollout\": {\"on\": 50}, \"targeting_key\": \"userId\"}");
	json_t *s = doc_of("f", "{\"default\": \"off\", \"rollout\": {\"on\": 50}, \"targeting_key\": \"sessionId\"}");
	CHECK_INT(iac_flags_moves(&moves, flag_of(u, "f"), flag_of(s, "f")), 0);
	CHECK(fabs(share_of(moves, "on", "off") - 0.25) < 1e-6);
	json_decref(moves);
	json_decref(u);
	json_decref(s);

	/* Hand-written targeting: iac cannot say who moves, and says so. */
	json_t *custom = parse("{\"state\": \"ENABLED\", \"defaultVariant\": \"off\", \"variants\": {\"on\": true, \"off\": false},"
			       " \"targeting\": {\"if\": [true, \"on\"]}, \"metadata\": {\"sticky\": true}}");
	json_t *plain = doc_of("f", "{\"default\": \"off\"}");
	CHECK_INT(iac_flags_check_sticky("f", flag_of(plain, "f"), custom), -1);
	CHECK_STR(iac_err_last(), "flag 'f': the new targeting is not a plain fractional rollout; cannot tell who moves");
	json_decref(custom);
	json_decref(plain);

	/* A new flag: everyone "moves" from (absent). */
	json_t *n = doc_of("f", "{\"default\": \"off\"}");
	CHECK_INT(iac_flags_moves(&moves, NULL, flag_of(n, "f")), 0);
	CHECK(fabs(share_of(moves, "(absent)", "off") - 1.0) < 1e-9);
	json_decref(moves);
	json_decref(n);
}

static void test_spec_set_and_render(void)
{
	json_t *spec = parse("{\"kind\": \"release\", \"default\": \"off\", \"rollout\": {\"on\": 10}, \"targeting_key\": \"userId\"}");
	json_t *next, *doc;
	iac_buf b = IAC_BUF_INIT;
	char *s;

	CHECK_INT(iac_flags_spec_set(&next, "f", spec, "on", 25), 0);
	s = compact(json_object_get(next, "rollout"));
	CHECK_STR(s, "{\"on\":25}");
	free(s);
	CHECK_INT(iac_flags_spec_to_flagd(&doc, "f", next), 0);
	iac_flags_render(&b, doc);
	CHECK_STR(iac_buf_cstr(&b), "enabled, on 25%, off 75% by 'userId'");
	iac_buf_clear(&b);
	json_decref(doc);
	json_decref(next);

	CHECK_INT(iac_flags_spec_set(&next, "f", spec, "on", -1), 0);
	CHECK_STR(json_string_value(json_object_get(next, "default")), "on");
	CHECK(json_object_get(next, "rollout") == NULL);
	CHECK_INT(iac_flags_spec_to_flagd(&doc, "f", next), 0);
	iac_flags_render(&b, doc);
	CHECK_STR(iac_buf_cstr(&b), "enabled, everyone gets 'on'");
	json_decref(doc);
	json_decref(next);

	CHECK_INT(iac_flags_spec_set(&next, "f", spec, "maybe", 5), -1);
	CHECK_STR(iac_err_last(), "flag 'f' has no variant 'maybe'");
	CHECK_INT(iac_flags_spec_set(&next, "f", spec, "on", 150), -1);
	CHECK_STR(iac_err_last(), "flag 'f': rollout percent for 'on' is 150, must be 0..100");
	CHECK_INT(iac_flags_spec_set(&next, "f", spec, "off", 50), -1);
	CHECK_CONTAINS(iac_err_last(), "'off' is the default variant");
	json_decref(spec);
	iac_buf_free(&b);
}

static const iac_test tests[] = {
	TEST(test_murmur3_vectors),
	TEST(test_flagd_json),
	TEST(test_validation),
	TEST(test_eval),
	TEST(test_stickiness),
	TEST(test_moves_and_sticky),
	TEST(test_spec_set_and_render),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
