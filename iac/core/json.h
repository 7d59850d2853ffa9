/* json: small accessors over Jansson for what every module does many times.
 * They borrow: nothing returned here needs freeing. */
#ifndef IAC_CORE_JSON_H
#define IAC_CORE_JSON_H

#include <jansson.h>

/* obj[key] when it is a string, else NULL (obj may be NULL or not an
 * object). */
static inline const char *iac_json_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

#endif
