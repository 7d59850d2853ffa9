/* harness: see harness.h. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

static char tmpdir[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_tmpdir(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_tmpdir(const char *name)
{
	if (tmpdir[0])
		return tmpdir;
	const char *base = getenv("IAC_FUZZ_TMPDIR");
	if (!base || !*base)
		base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/iac-fuzz-%s-XXXXXX", base, name);
	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "fuzz: cannot make a temporary directory in '%s': %s\n", base, strerror(errno));
		exit(2);
	}
	chmod(tmpdir, 0700);
	atexit(rm_tmpdir);
	return tmpdir;
}

char *fuzz_path(const char *dir, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	return p;
}

void fuzz_write(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	const char *p = data;
	if (fd < 0) {
		fprintf(stderr, "fuzz: cannot write '%s': %s\n", path, strerror(errno));
		exit(2);
	}
	while (size > 0) {
		ssize_t n = write(fd, p, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "fuzz: cannot write '%s': %s\n", path, strerror(errno));
			exit(2);
		}
		p += n;
		size -= (size_t)n;
	}
	close(fd);
}

char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* ---- Lua ---------------------------------------------------------------- */

#define CANARY_LEN 64
#define CANARY_BYTE 0xa5
#define HDR_MAGIC 0x1acf022eu

typedef struct {
	size_t used, max;
	long steps, max_steps;
} lua_limits;

/* Each block: header (its size), the bytes Lua asked for, a canary. */
typedef struct {
	size_t size;
	size_t magic;
} block_hdr;

static void check_block(const block_hdr *h, size_t osize)
{
	const unsigned char *c = (const unsigned char *)(h + 1) + h->size;
	if (h->magic != HDR_MAGIC || h->size != osize) {
		fprintf(stderr, "fuzz: Lua heap block %p damaged before its start (size %zu, Lua says %zu)\n",
			(void *)(h + 1), h->size, osize);
		abort();
	}
	for (size_t i = 0; i < CANARY_LEN; i++)
		if (c[i] != CANARY_BYTE) {
			fprintf(stderr, "fuzz: write past the end of a Lua heap block of %zu bytes at %p (offset %zu): "
				"a Lua stack overflow (missing lua_checkstack) or a buffer overrun\n",
				h->size, (void *)(h + 1), h->size + i);
			abort();
		}
}

static void *guarded_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	lua_limits *lim = ud;
	block_hdr *h = ptr ? (block_hdr *)ptr - 1 : NULL;
	if (!ptr)
		osize = 0;   /* then it is a type tag, not a size */
	else
		check_block(h, osize);
	if (nsize == 0) {
		free(h);
		lim->used -= osize;
		return NULL;
	}
	if (nsize > osize && lim->used + (nsize - osize) > lim->max)
		return NULL;   /* Lua raises "not enough memory" */
	block_hdr *n = realloc(h, sizeof(*n) + nsize + CANARY_LEN);
	if (!n)
		return NULL;
	n->size = nsize;
	n->magic = HDR_MAGIC;
	memset((unsigned char *)(n + 1) + nsize, CANARY_BYTE, CANARY_LEN);
	lim->used = lim->used - osize + nsize;
	return n + 1;
}

#define HOOK_EVERY 1000

static void count_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	void *ud;
	lua_getallocf(L, &ud);
	lua_limits *lim = ud;
	lim->steps += HOOK_EVERY;
	if (lim->steps > lim->max_steps)
		luaL_error(L, "fuzz: more than %d Lua instructions", (int)lim->max_steps);
}

lua_State *fuzz_lua_new(size_t max_bytes, long max_instructions)
{
	lua_limits *lim = calloc(1, sizeof(*lim));
	if (!lim)
		abort();
	lim->max = max_bytes;
	lim->max_steps = max_instructions;
	lua_State *L = lua_newstate(guarded_alloc, lim);
	if (!L)
		abort();
	lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
	return L;
}

void fuzz_lua_close(lua_State *L)
{
	void *ud;
	if (!L)
		return;
	lua_getallocf(L, &ud);
	lua_close(L);
	free(ud);
}

void fuzz_lua_safe_libs(lua_State *L)
{
	static const luaL_Reg libs[] = {
		{ LUA_GNAME, luaopen_base }, { LUA_STRLIBNAME, luaopen_string },
		{ LUA_TABLIBNAME, luaopen_table }, { LUA_MATHLIBNAME, luaopen_math },
		{ NULL, NULL },
	};
	static const char *const removed[] = {
		"dofile", "loadfile", "load", "require", "print", "collectgarbage", NULL,
	};
	for (const luaL_Reg *lib = libs; lib->func; lib++) {
		luaL_requiref(L, lib->name, lib->func, 1);
		lua_pop(L, 1);
	}
	for (int i = 0; removed[i]; i++) {
		lua_pushnil(L);
		lua_setglobal(L, removed[i]);
	}
	lua_getglobal(L, "string");
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pop(L, 1);
}
