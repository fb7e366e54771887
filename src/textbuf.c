/* A growing NUL-terminated text buffer, shared by every writer of replies and JSON. */
#include "arbiter/textbuf.h"

#include <stdlib.h>
#include <string.h>

#define TB_FIRST_CAP 4096

bool tb_reserve(textbuf *b, size_t n)
{
	size_t cap;
	char *np;

	if (b->oom)
		return false;
	if (b->len + n + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : TB_FIRST_CAP;
	while (cap < b->len + n + 1)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np) {
		b->oom = true;
		return false;
	}
	b->p = np;
	b->cap = cap;
	return true;
}

void tb_put(textbuf *b, const char *s, size_t n)
{
	if (!tb_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void tb_str(textbuf *b, const char *s)
{
	tb_put(b, s, strlen(s));
}

void tb_byte(textbuf *b, char c)
{
	if (!tb_reserve(b, 1))
		return;
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}
