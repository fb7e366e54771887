/* libFuzzer: list cursors through cursor_decode; whatever decodes must encode and decode back to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/cursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char id[AR_MAX_ID_LEN + 1], id2[AR_MAX_ID_LEN + 1], enc[256];
	int64_t us, us2;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (cursor_decode(s, &us, id, sizeof(id))) {
		if (us < 0 || id[0] == '\0')
			__builtin_trap();
		cursor_encode(us, id, enc, sizeof(enc));
		if (!cursor_decode(enc, &us2, id2, sizeof(id2)))
			__builtin_trap(); /* a cursor the service hands out must decode */
		if (us2 != us || strcmp(id, id2) != 0)
			__builtin_trap(); /* to what it was made from */
	}
	free(s);
	return 0;
}
