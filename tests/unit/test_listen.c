/* Unit tests for the listen address: host:port and [ipv6]:port parsing, and the socket address built from it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "arbiter/listen.h"

static void parses(const char *s, const char *host, unsigned port)
{
	char h[64], msg[256] = "";
	unsigned p = 12345;

	if (!listen_parse(s, h, sizeof(h), &p, msg, sizeof(msg)))
		fail_msg("'%s' refused: %s", s, msg);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
}

static void refuses(const char *s, const char *why)
{
	char h[64] = "untouched", msg[256] = "";
	unsigned p = 7;

	assert_false(listen_parse(s, h, sizeof(h), &p, msg, sizeof(msg)));
	assert_non_null(strstr(msg, why));
	assert_string_equal(h, "untouched");
	assert_int_equal(p, 7);
}

static void test_parse(void **state)
{
	(void)state;
	parses("127.0.0.1:8080", "127.0.0.1", 8080);
	parses("0.0.0.0:0", "0.0.0.0", 0);
	parses("[::]:8080", "::", 8080);
	parses("[::1]:0", "::1", 0);
	parses("[fd00::2]:65535", "fd00::2", 65535);
	refuses("::1:8080", "brackets");
	refuses("[::1]8080", "[ipv6]:port");
	refuses("[::1:8080", "[ipv6]:port");
	refuses("[]:8080", "host");
	refuses("[127.0.0.1]:80", "IPv6 addresses only");
	refuses("127.0.0.1", "host:port");
	refuses(":8080", "host");
	refuses("127.0.0.1:65536", "port");
	refuses("127.0.0.1:-1", "port");
	refuses("127.0.0.1:+80", "port");
	refuses("127.0.0.1:", "port");
	refuses("127.0.0.1:80x", "port");
}

static void test_host_too_long(void **state)
{
	char h[8], msg[128];
	unsigned p;

	(void)state;
	assert_true(listen_parse("1.2.3.4:1", h, sizeof(h), &p, msg, sizeof(msg)));
	assert_false(listen_parse("10.20.30.40:1", h, sizeof(h), &p, msg, sizeof(msg)));
}

static void test_sockaddr(void **state)
{
	struct sockaddr_storage ss;
	char msg[128], text[64];
	bool v6 = true;

	(void)state;
	assert_true(listen_sockaddr("127.0.0.1", 8080, &ss, &v6, msg, sizeof(msg)));
	assert_false(v6);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port), 8080);

	assert_true(listen_sockaddr("::1", 9, &ss, &v6, msg, sizeof(msg)));
	assert_true(v6);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port), 9);
	assert_non_null(inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)&ss)->sin6_addr,
				  text, sizeof(text)));
	assert_string_equal(text, "::1");

	assert_false(listen_sockaddr("localhost", 80, &ss, &v6, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "numeric"));
	assert_false(listen_sockaddr("::g", 80, &ss, &v6, msg, sizeof(msg)));
	assert_false(listen_sockaddr("1.2.3", 80, &ss, &v6, msg, sizeof(msg)));
	assert_false(listen_sockaddr("1.2.3.4", 65536, &ss, &v6, msg, sizeof(msg)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_host_too_long),
		cmocka_unit_test(test_sockaddr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
