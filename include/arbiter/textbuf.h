/*
 * A growing text buffer, always NUL-terminated once it holds anything. When
 * memory runs out, oom is set and nothing more is added, so a writer puts
 * everything and checks oom once at the end. Start from { 0 }; the owner
 * free()s p. Pure: no I/O.
 */
#ifndef ARBITER_TEXTBUF_H
#define ARBITER_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	char *p;
	size_t len, cap;
	bool oom;
} textbuf;

/* Room for n more bytes and the NUL after them; false (oom set) without. */
bool tb_reserve(textbuf *b, size_t n);
void tb_put(textbuf *b, const char *s, size_t n);
void tb_str(textbuf *b, const char *s);
void tb_byte(textbuf *b, char c);

#endif
