/* base64: standard (RFC 4648, "+/" with "=" padding) encoding, as the etcd
 * JSON gateway wants keys and values and as filebase64() gives bytes to
 * the topology language. Built on OpenSSL's EVP block coder.
 *
 * Results are new NUL-terminated buffers the caller frees.
 */
#ifndef IAC_CORE_BASE64_H
#define IAC_CORE_BASE64_H

#include <stddef.h>

char *iac_base64_encode(const void *data, size_t len);

/* Decode `text` (length `len`). Padding is optional and the URL-safe
 * alphabet ("-_") is accepted too; whitespace inside is not. Returns 0 with
 * *out (NUL-terminated, *out_len bytes without the NUL), or -1 with a
 * message when the text is not base64. */
int iac_base64_decode(char **out, size_t *out_len, const char *text, size_t len);

#endif
