/* Unit tests for checkpoints: RFC 6962 roots, the signed text, the log line, Ed25519 keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "arbiter/checkpoint.h"
#include "arbiter/ckpt_key.h"

static void unhex_or_fail(const char *hex, uint8_t *out, size_t n)
{
	assert_true(ckpt_unhex(hex, out, n));
}

static void assert_hex(const uint8_t *b, size_t n, const char *want)
{
	char hex[2 * 64 + 1];

	assert_true(n <= 64);
	ckpt_hex(b, n, hex);
	assert_string_equal(hex, want);
}

/* The certificate-transparency reference vectors for RFC 6962's Merkle
 * tree hash (leaves "", 00, 10, 2021, 3031, 40414243, 5051525354555657,
 * 606162636465666768696a6b6c6d6e6f; the roots of the first n of them). */
static void test_rfc6962_roots(void **state)
{
	static const char *const leaves[] = { "", "00", "10", "2021", "3031", "40414243",
		"5051525354555657", "606162636465666768696a6b6c6d6e6f" };
	static const char *const roots[] = {
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	};
	uint8_t h[8][SHA256_LEN], root[SHA256_LEN];

	(void)state;
	for (size_t i = 0; i < 8; i++) {
		uint8_t data[16];
		size_t n = strlen(leaves[i]) / 2;
		unhex_or_fail(leaves[i], data, n);
		assert_true(ckpt_leaf_hash(data, n, h[i]));
	}
	for (size_t n = 0; n <= 8; n++) {
		ckpt_merkle_root((const uint8_t (*)[SHA256_LEN])h, n, root);
		assert_hex(root, SHA256_LEN, roots[n]);
	}
}

static void test_leaf_limits(void **state)
{
	uint8_t d[SHA256_LEN] = { 0 }, out[SHA256_LEN], again[SHA256_LEN];
	static uint8_t big[CKPT_LEAF_MAX + 1];
	char long_id[CKPT_LEAF_MAX];

	(void)state;
	assert_false(ckpt_leaf_hash(big, sizeof(big), out));
	assert_true(ckpt_leaf_hash(big, CKPT_LEAF_MAX, out));
	assert_false(ckpt_head_leaf("", 1, d, out));
	assert_false(ckpt_head_leaf("c_\x1f" "1", 1, d, out));
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_false(ckpt_head_leaf(long_id, 1, d, out));
	/* the leaf is the documented text, hashed as an RFC 6962 leaf */
	{
		const char text[] = "c_1\x1f" "7\x1f"
			"0000000000000000000000000000000000000000000000000000000000000000";
		assert_true(ckpt_head_leaf("c_1", 7, d, out));
		assert_true(ckpt_leaf_hash(text, sizeof(text) - 1, again));
		assert_memory_equal(out, again, SHA256_LEN);
		assert_true(ckpt_head_leaf("c_1", 8, d, again));
		assert_memory_not_equal(out, again, SHA256_LEN);
	}
}

static ckpt sample(void)
{
	ckpt c;

	memset(&c, 0, sizeof(c));
	c.no = 42;
	snprintf(c.at, sizeof(c.at), "2026-12-06T23:00:00.000Z");
	snprintf(c.key_id, sizeof(c.key_id), "0123456789abcdef");
	c.leaves = 3;
	memset(c.root, 0xab, sizeof(c.root));
	memset(c.prev, 0x01, sizeof(c.prev));
	memset(c.sig, 0x5a, sizeof(c.sig));
	return c;
}

static void test_signing_input(void **state)
{
	ckpt c = sample();
	char buf[512];
	size_t n = ckpt_signing_input(&c, buf, sizeof(buf));
	const char *want = "arbiter-checkpoint/1\nno 42\nat 2026-12-06T23:00:00.000Z\n"
		"key 0123456789abcdef\nleaves 3\n"
		"root abababababababababababababababababababababababababababababababab\n"
		"prev 0101010101010101010101010101010101010101010101010101010101010101\n";

	(void)state;
	assert_int_equal(n, strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(ckpt_signing_input(&c, buf, 10), 0);
}

static void test_line_round_trip(void **state)
{
	ckpt c = sample(), back;
	char msg[128];
	char *line = ckpt_encode(&c);
	uint8_t h1[SHA256_LEN], h2[SHA256_LEN];

	(void)state;
	assert_non_null(line);
	assert_non_null(strstr(line, "{\"v\":1,\"no\":42,\"at\":\"2026-12-06T23:00:00.000Z\","));
	assert_true(ckpt_decode(line, strlen(line), &back, msg, sizeof(msg)));
	assert_memory_equal(&c, &back, sizeof(c));
	assert_true(ckpt_hash(&c, h1));
	back.leaves++;
	assert_true(ckpt_hash(&back, h2));
	assert_memory_not_equal(h1, h2, SHA256_LEN);
	free(line);
}

static void refused(const char *line, const char *why)
{
	ckpt c;
	char msg[128] = "";

	assert_false(ckpt_decode(line, strlen(line), &c, msg, sizeof(msg)));
	if (!strstr(msg, why))
		fail_msg("'%s': reason '%s' lacks '%s'", line, msg, why);
}

static void test_decode_refuses(void **state)
{
	const char *z64 = "0000000000000000000000000000000000000000000000000000000000000000";
	char good[1024], line[1100];

	(void)state;
	snprintf(good, sizeof(good), "\"no\":1,\"at\":\"t\",\"key_id\":\"0123456789abcdef\","
		 "\"leaves\":0,\"root\":\"%s\",\"prev\":\"%s\",\"sig\":\"%s%s\"", z64, z64, z64, z64);
	snprintf(line, sizeof(line), "{\"v\":1,%s}", good);
	{
		ckpt c;
		char msg[128];
		assert_true(ckpt_decode(line, strlen(line), &c, msg, sizeof(msg)));
	}
	refused("not json", "not a JSON object");
	refused("[1]", "not a JSON object");
	snprintf(line, sizeof(line), "{\"v\":2,%s}", good);
	refused(line, "version 2");
	snprintf(line, sizeof(line), "{\"v\":1,%s,\"extra\":1}", good);
	refused(line, "unknown key 'extra'");
	snprintf(line, sizeof(line), "{\"v\":1,\"no\":1,\"no\":2,%s}", good + 7);
	refused(line, "not a JSON object");
	snprintf(line, sizeof(line), "{\"v\":1,\"no\":0%s}", good + 6);
	refused(line, "no:");
	snprintf(line, sizeof(line), "{\"v\":1,%s}", good);
	line[strlen(line) - 3] = 'G';
	refused(line, "sig:");
	snprintf(line, sizeof(line), "{\"v\":1,%s}", good);
	memcpy(strstr(line, "0123456789abcdef"), "0123456789ABCDEF", 16);
	refused(line, "key_id:");
}

/* RFC 8032 section 7.1, test 1 (empty message) and test 2 (one byte). */
static void test_ed25519_rfc8032(void **state)
{
	uint8_t seed[32], pub[32], sig[CKPT_SIG_LEN], want[CKPT_SIG_LEN], m = 0x72;
	char msg[128];
	ckpt_key *k, *p;

	(void)state;
	unhex_or_fail("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", seed, 32);
	unhex_or_fail("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", pub, 32);
	unhex_or_fail("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b", want, CKPT_SIG_LEN);
	k = ckpt_key_from_raw(seed, true, msg, sizeof(msg));
	p = ckpt_key_from_raw(pub, false, msg, sizeof(msg));
	assert_non_null(k);
	assert_non_null(p);
	assert_string_equal(ckpt_key_id(k), ckpt_key_id(p));
	assert_true(ckpt_key_sign(k, "", 0, sig));
	assert_memory_equal(sig, want, CKPT_SIG_LEN);
	assert_true(ckpt_key_verify(p, "", 0, sig));
	assert_false(ckpt_key_verify(p, &m, 1, sig));
	assert_false(ckpt_key_sign(p, "", 0, sig));
	ckpt_key_free(k);
	ckpt_key_free(p);

	unhex_or_fail("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", seed, 32);
	unhex_or_fail("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00", want, CKPT_SIG_LEN);
	k = ckpt_key_from_raw(seed, true, msg, sizeof(msg));
	assert_non_null(k);
	assert_true(ckpt_key_sign(k, &m, 1, sig));
	assert_memory_equal(sig, want, CKPT_SIG_LEN);
	ckpt_key_free(k);
	ckpt_key_free(NULL);
}

static void test_checkpoint_signatures(void **state)
{
	char msg[128];
	ckpt_key *k1 = ckpt_key_generate(msg, sizeof(msg)), *k2 = ckpt_key_generate(msg, sizeof(msg));
	ckpt c = sample(), forged;
	char *pem;

	(void)state;
	assert_non_null(k1);
	assert_non_null(k2);
	assert_string_not_equal(ckpt_key_id(k1), ckpt_key_id(k2));
	assert_true(ckpt_key_sign_checkpoint(k1, &c));
	assert_string_equal(c.key_id, ckpt_key_id(k1));
	assert_true(ckpt_key_verify_checkpoint(k1, &c));
	assert_false(ckpt_key_verify_checkpoint(k2, &c));
	forged = c;
	forged.root[0] ^= 1;
	assert_false(ckpt_key_verify_checkpoint(k1, &forged));
	forged = c;
	snprintf(forged.key_id, sizeof(forged.key_id), "%s", ckpt_key_id(k2));
	assert_false(ckpt_key_verify_checkpoint(k2, &forged));
	pem = ckpt_key_public_pem(k1);
	assert_non_null(pem);
	assert_non_null(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
	free(pem);
	ckpt_key_free(k1);
	ckpt_key_free(k2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6962_roots),
		cmocka_unit_test(test_leaf_limits),
		cmocka_unit_test(test_signing_input),
		cmocka_unit_test(test_line_round_trip),
		cmocka_unit_test(test_decode_refuses),
		cmocka_unit_test(test_ed25519_rfc8032),
		cmocka_unit_test(test_checkpoint_signatures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
