/* murmur3: MurmurHash3 x86_32, the hash flagd's `fractional` operator uses to
 * put an evaluation context into a percentage bucket.
 *
 * Pure function over borrowed bytes; nothing is allocated.
 */
#ifndef IAC_FLAGS_MURMUR3_H
#define IAC_FLAGS_MURMUR3_H

#include <stddef.h>
#include <stdint.h>

/* MurmurHash3_x86_32 of `len` bytes at `data` (NULL allowed when len is 0).
 * flagd uses seed 0 over the UTF-8 bytes of the bucketing string. */
uint32_t iac_murmur3_32(const void *data, size_t len, uint32_t seed);

#endif
