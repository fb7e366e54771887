/* Opaque keyset cursors: (created_at µs, id) <-> base64url text; pure. */
#include "arbiter/cursor.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void cursor_encode(int64_t us, const char *id, char *out, size_t outlen)
{
	char raw[AR_MAX_ID_LEN + 32];
	size_t n = (size_t)snprintf(raw, sizeof(raw), "%" PRId64 ".%s", us, id);
	size_t o = 0;

	if (n >= sizeof(raw))
		n = sizeof(raw) - 1;
	for (size_t i = 0; i < n && o + 5 < outlen; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)raw[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)raw[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)raw[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64url[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
}

static int b64val(char c)
{
	const char *p = c ? strchr(b64url, c) : NULL;
	return p ? (int)(p - b64url) : -1;
}

bool cursor_decode(const char *s, int64_t *us, char *id, size_t idlen)
{
	char raw[AR_MAX_ID_LEN + 32];
	size_t n = strlen(s), o = 0;
	char *dot, *end;
	long long v;

	if (n == 0 || n % 4 == 1 || n > (sizeof(raw) - 1) / 3 * 4)
		return false;
	for (size_t i = 0; i < n; i += 4) {
		int a = b64val(s[i]), b = b64val(s[i + 1]);
		int c = i + 2 < n ? b64val(s[i + 2]) : 0;
		int d = i + 3 < n ? b64val(s[i + 3]) : 0;
		if (a < 0 || b < 0 || c < 0 || d < 0)
			return false;
		uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
		raw[o++] = (char)(w >> 16);
		if (i + 2 < n)
			raw[o++] = (char)(w >> 8);
		if (i + 3 < n)
			raw[o++] = (char)w;
	}
	raw[o] = '\0';
	if (memchr(raw, '\0', o))
		return false;
	dot = strchr(raw, '.');
	if (!dot || dot == raw)
		return false;
	*dot = '\0';
	errno = 0;
	v = strtoll(raw, &end, 10);
	/* µs since the epoch up to 9999-12-31: PostgreSQL's arithmetic on
	 * anything past that fails (a 500), and no row was made then. */
	if (errno || *end || v < 0 || v > CURSOR_MAX_US || !isdigit((unsigned char)raw[0]))
		return false;
	if (strlen(dot + 1) == 0 || strlen(dot + 1) >= idlen ||
	    strspn(dot + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
		    strlen(dot + 1))
		return false;
	*us = v;
	snprintf(id, idlen, "%s", dot + 1);
	return true;
}
