/* fuzz_etcd: etcd v3 JSON gateway answers as iac/flags/etcd.c reads them:
 * the same bytes as a kv/range answer (keys and values base64-decoded,
 * revisions read from strings or numbers) and as the kv/txn answer of a
 * compare-and-swap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iac/etcd/etcd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	iac_etcd_kv *kvs = NULL;
	size_t n = 0;
	int64_t rev = 0;

	if (iac_etcd_parse_range(&kvs, &n, &rev, (const char *)data, size) == 0) {
		for (size_t i = 0; i < n; i++) {
			/* callers use key and value as C strings and as bytes */
			if (!kvs[i].key || !kvs[i].value || kvs[i].value[kvs[i].value_len] != '\0')
				abort();
			(void)strlen(kvs[i].key);
		}
		iac_etcd_kvs_free(kvs, n);
	} else if (kvs || n) {
		abort();   /* an error leaves nothing to free */
	}
	iac_etcd_parse_txn(&rev, (const char *)data, size);
	iac_etcd_parse_txn(NULL, (const char *)data, size);
	return 0;
}
