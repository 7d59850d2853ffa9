/* base64: RFC 4648 encoding and decoding (see base64.h). */
#include "iac/flags/base64.h"
#include "iac/core/err.h"
#include "iac/core/util.h"

#include <stdint.h>
#include <stdlib.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *iac_base64_encode(const void *data, size_t len)
{
	const unsigned char *p = data;
	char *out = iac_xmalloc((len + 2) / 3 * 4 + 1), *o = out;
	size_t i = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int sextet(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

int iac_base64_decode(char **out, size_t *out_len, const char *text, size_t len)
{
	while (len > 0 && text[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return iac_err_set("invalid base64: %zu characters cannot encode whole bytes", len);

	unsigned char *buf = iac_xmalloc(len / 4 * 3 + 3), *o = buf;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = sextet(text[i]);
		if (v < 0) {
			free(buf);
			return iac_err_set("invalid base64: unexpected character at offset %zu", i);
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*o = '\0';
	*out_len = (size_t)(o - buf);
	*out = (char *)buf;
	return 0;
}
