/* map: string-keyed open-addressing hash map (see map.h). */
#include "iac/core/map.h"
#include "iac/core/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a: short keys (resource addresses), good enough spread, no seed needed
 * because keys come from the operator's own configuration. */
static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static size_t find_slot(const iac_map *m, const char *key)
{
	size_t mask = m->cap - 1, i = (size_t)hash_str(key) & mask;
	while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
		i = (i + 1) & mask;
	return i;
}

static void rehash(iac_map *m, size_t cap)
{
	iac_map old = *m;
	m->slots = iac_xcalloc(cap, sizeof(*m->slots));
	m->cap = cap;
	m->count = 0;
	for (size_t i = 0; i < old.cap; i++) {
		if (!old.slots[i].key)
			continue;
		size_t j = find_slot(m, old.slots[i].key);
		m->slots[j] = old.slots[i];
		m->count++;
	}
	free(old.slots);
}

void *iac_map_put(iac_map *m, const char *key, void *value)
{
	if ((m->count + 1) * 4 >= m->cap * 3)
		rehash(m, m->cap ? m->cap * 2 : 16);
	size_t i = find_slot(m, key);
	if (m->slots[i].key) {
		void *prev = m->slots[i].value;
		m->slots[i].value = value;
		return prev;
	}
	m->slots[i].key = iac_xstrdup(key);
	m->slots[i].value = value;
	m->count++;
	return NULL;
}

void *iac_map_get(const iac_map *m, const char *key)
{
	if (!m->cap)
		return NULL;
	size_t i = find_slot(m, key);
	return m->slots[i].key ? m->slots[i].value : NULL;
}

void *iac_map_del(iac_map *m, const char *key)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1, i = find_slot(m, key);
	if (!m->slots[i].key)
		return NULL;
	void *prev = m->slots[i].value;
	free(m->slots[i].key);
	m->slots[i].key = NULL;
	m->count--;
	/* Backward-shift the cluster that follows so probing stays correct. */
	for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
		iac_map_entry e = m->slots[j];
		m->slots[j].key = NULL;
		size_t k = find_slot(m, e.key);
		m->slots[k] = e;
	}
	return prev;
}

void iac_map_free(iac_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	m->slots = NULL;
	m->cap = m->count = 0;
}
