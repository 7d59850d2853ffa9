/* base64 (see base64.h): OpenSSL does the coding; this file only adapts
 * the input forms etcd and users hand us (no padding, URL-safe letters). */
#include "iac/core/base64.h"
#include "iac/core/err.h"
#include "iac/core/util.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

char *iac_base64_encode(const void *data, size_t len)
{
	if (len > (size_t)INT32_MAX / 4 * 3)
		abort();   /* 1.5 GiB: no file or value iac handles comes near */
	char *out = iac_xmalloc((len + 2) / 3 * 4 + 1);
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);   /* NUL-terminates */
	return out;
}

int iac_base64_decode(char **out, size_t *out_len, const char *text, size_t len)
{
	while (len > 0 && text[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return iac_err_set("invalid base64: %zu characters cannot encode whole bytes", len);
	if (len > (size_t)INT32_MAX / 2)
		return iac_err_set("invalid base64: %zu characters are too many", len);
	/* EVP_DecodeBlock wants whole quads in the standard alphabet */
	size_t padded = (len + 3) / 4 * 4, pad = padded - len;
	char *norm = iac_xmalloc(padded + 1);
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') &&
			 c != '+' && c != '/') {
			free(norm);
			return iac_err_set("invalid base64: unexpected character at offset %zu", i);
		}
		norm[i] = c;
	}
	memset(norm + len, '=', pad);
	unsigned char *buf = iac_xmalloc(padded / 4 * 3 + 1);
	int n = EVP_DecodeBlock(buf, (unsigned char *)norm, (int)padded);
	free(norm);
	if (n < 0 || (size_t)n < pad) {
		free(buf);
		return iac_err_set("invalid base64");
	}
	*out_len = (size_t)n - pad;   /* the block coder counts padding as zero bytes */
	buf[*out_len] = '\0';
	*out = (char *)buf;
	return 0;
}
