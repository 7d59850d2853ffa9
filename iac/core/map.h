/* map: a string-keyed hash map (open addressing, linear probing).
 *
 * Keys are copied and owned by the map; values are borrowed pointers whose
 * ownership stays with the caller. Used for address indexes that must stay
 * fast at 100,000 resources.
 */
#ifndef IAC_CORE_MAP_H
#define IAC_CORE_MAP_H

#include <stddef.h>

typedef struct {
	char *key;
	void *value;
} iac_map_entry;

typedef struct {
	iac_map_entry *slots;
	size_t cap;   /* power of two, 0 when empty */
	size_t count;
} iac_map;

#define IAC_MAP_INIT { NULL, 0, 0 }

/* Insert or replace; returns the previous value or NULL. */
void *iac_map_put(iac_map *m, const char *key, void *value);
void *iac_map_get(const iac_map *m, const char *key);
/* Remove; returns the removed value or NULL. */
void *iac_map_del(iac_map *m, const char *key);
void iac_map_free(iac_map *m);

/* Iterate: for (size_t i = 0; i < m.cap; i++) if (m.slots[i].key) ... */

#endif
