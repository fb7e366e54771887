/* Unit tests for the SHA-256 module against FIPS 180-4 test vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "arbiter/sha256.h"

static void check(const char *msg, size_t len, const char *want)
{
	uint8_t d[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];

	sha256(msg, len, d);
	sha256_hex(d, hex);
	assert_string_equal(hex, want);
}

static void test_vectors(void **state)
{
	(void)state;
	check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	check("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	      112, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void **state)
{
	char *m = malloc(1000000);

	(void)state;
	assert_non_null(m);
	memset(m, 'a', 1000000);
	check(m, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(m);
}

static void test_lengths_around_block_edges(void **state)
{
	/* 55 and 64 bytes straddle the padding boundary (digests from coreutils sha256sum) */
	(void)state;
	check("0123456789012345678901234567890123456789012345678901234", 55,
	      "f34d5a0f80c0cbf84c8c0b90218c22637abd199965249da736a20143c8c9c9d9");
	check("0123456789012345678901234567890123456789012345678901234567890123", 64,
	      "9674d9e078535b7cec43284387a6ee39956188e735a85452b0050b55341cda56");
}

static void test_equal(void **state)
{
	uint8_t a[SHA256_LEN], b[SHA256_LEN];

	(void)state;
	sha256("x", 1, a);
	sha256("x", 1, b);
	assert_true(sha256_equal(a, b));
	b[31] ^= 1;
	assert_false(sha256_equal(a, b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_million_a),
		cmocka_unit_test(test_lengths_around_block_edges),
		cmocka_unit_test(test_equal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
