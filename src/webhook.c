/* Push webhooks' pure rules: signatures, the retry schedule, reply outcomes, type patterns, SSRF address classes. */
#include "arbiter/webhook.h"

#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/core_names.h>

#define SECRET_PREFIX "whsec_"

bool wh_secret_format(const unsigned char *key, size_t n, char *out, size_t outlen)
{
	size_t need = strlen(SECRET_PREFIX) + 4 * ((n + 2) / 3) + 1;

	if (n < WH_SECRET_MIN || n > WH_SECRET_MAX || outlen < need)
		return false;
	memcpy(out, SECRET_PREFIX, strlen(SECRET_PREFIX));
	EVP_EncodeBlock((unsigned char *)out + strlen(SECRET_PREFIX), key, (int)n);
	return true;
}

bool wh_secret_parse(const char *text, unsigned char *key, size_t *n)
{
	unsigned char buf[3 * (WH_SECRET_TEXT_MAX / 4) + 3];
	size_t len, pad = 0;
	int got;

	if (strncmp(text, SECRET_PREFIX, strlen(SECRET_PREFIX)) != 0)
		return false;
	text += strlen(SECRET_PREFIX);
	len = strlen(text);
	if (len == 0 || len % 4 != 0 || len > WH_SECRET_TEXT_MAX - 7)
		return false;
	/* EVP_DecodeBlock counts the padding as bytes */
	while (pad < 2 && text[len - 1 - pad] == '=')
		pad++;
	got = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len);
	if (got < 0 || (size_t)got < pad)
		return false;
	got -= (int)pad;
	if (got < WH_SECRET_MIN || got > WH_SECRET_MAX)
		return false;
	memcpy(key, buf, (size_t)got);
	*n = (size_t)got;
	return true;
}

bool wh_sign(const unsigned char *key, size_t keylen, const char *msg_id, int64_t ts,
	     const char *body, size_t bodylen, char *out, size_t outlen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char head[160];
	int hn = snprintf(head, sizeof(head), "%s.%lld.", msg_id, (long long)ts);
	EVP_MAC *m = NULL;
	EVP_MAC_CTX *c = NULL;
	OSSL_PARAM params[2];
	size_t got = 0;
	bool ok = false;

	if (hn < 0 || (size_t)hn >= sizeof(head) || outlen < WH_SIG_TEXT_MAX)
		return false;
	/* streamed (EVP_MAC), so the body is not copied to put the head before it */
	m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	c = m ? EVP_MAC_CTX_new(m) : NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!c || !EVP_MAC_init(c, key, keylen, params) ||
	    !EVP_MAC_update(c, (const unsigned char *)head, (size_t)hn) ||
	    !EVP_MAC_update(c, (const unsigned char *)body, bodylen) ||
	    !EVP_MAC_final(c, mac, &got, sizeof(mac)) || got != 32)
		goto fail;
	maclen = (unsigned int)got;
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
	ok = true;
fail:
	EVP_MAC_CTX_free(c);
	EVP_MAC_free(m);
	return ok;
}

static const int64_t schedule_s[WH_ATTEMPTS] = {
	0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600,
};

int64_t wh_retry_delay_ms(int attempts, double scale, uint32_t rnd)
{
	double ms, jitter;

	if (attempts < 0)
		attempts = 0;
	if (attempts >= WH_ATTEMPTS)
		return -1;
	if (!(scale >= 0))
		scale = 1;
	ms = (double)schedule_s[attempts] * 1000.0 * scale;
	/* receivers that failed together should not all be retried together */
	jitter = ((double)rnd / 4294967295.0) * 0.2 - 0.1;
	ms += ms * jitter;
	return ms < 0 ? 0 : (int64_t)ms;
}

bool wh_retry_after_parse(const char *v, int64_t now_s, int64_t *seconds)
{
	struct tm tm;
	const char *end;
	time_t t;

	while (*v == ' ' || *v == '\t')
		v++;
	if (*v >= '0' && *v <= '9') {
		int64_t n = 0;
		for (; *v >= '0' && *v <= '9'; v++) {
			if (n > 100000000)
				return false;
			n = n * 10 + (*v - '0');
		}
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v)
			return false;
		*seconds = n;
		return true;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return false;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*seconds = (int64_t)t > now_s ? (int64_t)t - now_s : 0;
	return true;
}

wh_outcome wh_classify(long status)
{
	if (status >= 200 && status <= 299)
		return WH_ACK;
	if (status == 410)
		return WH_GONE;
	if (status == 429 || status == 502 || status == 503 || status == 504)
		return WH_THROTTLED;
	return WH_FAIL;
}

static bool word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

bool wh_pattern_valid(const char *p)
{
	size_t n = strlen(p), w = 0;

	if (n == 0 || n > WH_PATTERN_MAX)
		return false;
	if (strcmp(p, "*") == 0)
		return true;
	if (n >= 2 && strcmp(p + n - 2, ".*") == 0)
		n -= 2;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '.') {
			if (w == 0)
				return false;
			w = 0;
		} else if (word_char(p[i])) {
			w++;
		} else {
			return false;
		}
	}
	return w > 0;
}

bool wh_type_matches(const char *pattern, const char *type)
{
	size_t n = strlen(pattern);

	if (strcmp(pattern, "*") == 0)
		return true;
	if (n >= 2 && strcmp(pattern + n - 2, ".*") == 0)
		return strncmp(pattern, type, n - 1) == 0 && type[n - 1] != '\0';
	return strcmp(pattern, type) == 0;
}

static const char *v4_refusal(uint32_t a)
{
	if (a == 0xA9FEA9FEu)                        /* 169.254.169.254 */
		return "metadata";
	if ((a >> 24) == 0)                          /* 0/8 */
		return "unspecified";
	if ((a >> 24) == 127)
		return "loopback";
	if ((a >> 24) == 10 || (a >> 20) == (172u << 4 | 1) || (a >> 16) == (192u << 8 | 168) ||
	    (a >> 22) == (100u << 2 | 1))            /* 10/8, 172.16/12, 192.168/16, 100.64/10 */
		return "private";
	if ((a >> 16) == (169u << 8 | 254))
		return "link-local";
	if ((a >> 28) == 14)
		return "multicast";
	if ((a >> 28) == 15 || (a >> 8) == (192u << 16) ||   /* 240/4, 192.0.0/24 */
	    (a >> 17) == (198u << 7 | 9))                     /* 198.18/15 benchmarking */
		return "reserved";
	return NULL;
}

const char *wh_addr_refusal(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		return v4_refusal(ntohl(s4->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		const unsigned char *b = s6->sin6_addr.s6_addr;
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		static const unsigned char zero[16];
		if (memcmp(b, mapped, 12) == 0)
			return v4_refusal((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
					  (uint32_t)b[14] << 8 | b[15]);
		if (memcmp(b, zero, 16) == 0)
			return "unspecified";
		if (memcmp(b, zero, 15) == 0 && b[15] == 1)
			return "loopback";
		if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
			return "link-local";
		if ((b[0] & 0xfe) == 0xfc)
			return "private";
		if (b[0] == 0xff)
			return "multicast";
		/* fd00:ec2::254, the IPv6 metadata address, is inside fc00::/7 */
		return NULL;
	}
	return "reserved";
}

bool wh_host_listed(const char *list, const char *host)
{
	size_t hl = strlen(host);

	if (!list || !host[0])
		return false;
	while (*list) {
		const char *end = strchr(list, ',');
		size_t n = end ? (size_t)(end - list) : strlen(list);
		const char *a = list, *z = list + n;
		while (a < z && isspace((unsigned char)*a))
			a++;
		while (z > a && isspace((unsigned char)z[-1]))
			z--;
		if ((size_t)(z - a) == hl && strncasecmp(a, host, hl) == 0)
			return true;
		if (!end)
			break;
		list = end + 1;
	}
	return false;
}
