/* SHA-256 (FIPS 180-4), pure: API key secrets are stored only as this hash. */
#ifndef ARBITER_SHA256_H
#define ARBITER_SHA256_H
#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32
void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);
/* Lowercase hex of a digest into out (65 bytes). */
void sha256_hex(const uint8_t d[SHA256_LEN], char out[2 * SHA256_LEN + 1]);
/* Compares two digests in time independent of where they differ. */
int sha256_equal(const uint8_t a[SHA256_LEN], const uint8_t b[SHA256_LEN]);
#endif
