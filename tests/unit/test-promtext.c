/*
 * The Prometheus text exposition writer (supervisor/lib/promtext.c): label
 * values escaped (backslash, double quote, newline), HELP text escaped,
 * values spelled as the format wants, cumulative histogram buckets; and
 * --metrics-listen's address parser (supervisor/daemon/metrics_http.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "metrics_http.h"
#include "promtext.h"
#include "util.h"

static char *take(struct sv_prom *p)
{
	size_t n;
	char *s = sv_prom_take(p, &n);
	assert_non_null(s);
	assert_int_equal(strlen(s), n);
	return s;
}

static void test_escape(void **state)
{
	(void)state;
	struct sv_prom p = { 0 };
	sv_prom_sample(&p, "qsup_x_total", (const char *const[]){ "guest", "web1",
	               "disk", "a\\b\"c\nd", NULL }, 3);
	sv_prom_sample(&p, "qsup_y", (const char *const[]){ "guest", NULL, "nic", "n0", NULL },
	               0.5);
	sv_prom_sample(&p, "qsup_z", NULL, 12);
	char *s = take(&p);
	assert_string_equal(s, "qsup_x_total{guest=\"web1\",disk=\"a\\\\b\\\"c\\nd\"} 3\n"
	                    "qsup_y{nic=\"n0\"} 0.5\n"
	                    "qsup_z 12\n");
	free(s);
}

static void test_family(void **state)
{
	(void)state;
	struct sv_prom p = { 0 };
	sv_prom_family(&p, "qsup_a", "gauge", "a \"quoted\" word\\ and\na newline");
	char *s = take(&p);
	assert_string_equal(s, "# HELP qsup_a a \"quoted\" word\\\\ and\\na newline\n"
	                    "# TYPE qsup_a gauge\n");
	free(s);
}

static void test_values(void **state)
{
	(void)state;
	char b[32];
	sv_prom_value(0, b, sizeof(b));
	assert_string_equal(b, "0");
	sv_prom_value(268435456, b, sizeof(b));
	assert_string_equal(b, "268435456");
	sv_prom_value(-3, b, sizeof(b));
	assert_string_equal(b, "-3");
	sv_prom_value(0.25, b, sizeof(b));
	assert_string_equal(b, "0.25");
	sv_prom_value(1e300, b, sizeof(b));
	assert_string_equal(b, "1e+300");
	sv_prom_value(1.0 / 0.0, b, sizeof(b));
	assert_string_equal(b, "+Inf");
	sv_prom_value(-1.0 / 0.0, b, sizeof(b));
	assert_string_equal(b, "-Inf");
	sv_prom_value(0.0 / 0.0, b, sizeof(b));
	assert_string_equal(b, "NaN");
}

static void test_histogram(void **state)
{
	(void)state;
	static const double bounds[] = { 0.01, 0.1, 1 };
	struct sv_hist h;
	sv_hist_init(&h, bounds, 3);
	sv_hist_observe(&h, 0.005);
	sv_hist_observe(&h, 0.01);   /* le is inclusive */
	sv_hist_observe(&h, 0.5);
	sv_hist_observe(&h, 7);
	struct sv_prom p = { 0 };
	sv_prom_histogram(&p, "qsup_lat_seconds", "latency", &h);
	char *s = take(&p);
	assert_string_equal(s, "# HELP qsup_lat_seconds latency\n"
	                    "# TYPE qsup_lat_seconds histogram\n"
	                    "qsup_lat_seconds_bucket{le=\"0.01\"} 2\n"
	                    "qsup_lat_seconds_bucket{le=\"0.1\"} 2\n"
	                    "qsup_lat_seconds_bucket{le=\"1\"} 3\n"
	                    "qsup_lat_seconds_bucket{le=\"+Inf\"} 4\n"
	                    "qsup_lat_seconds_sum 7.515\n"
	                    "qsup_lat_seconds_count 4\n");
	free(s);
}

static void test_big(void **state)
{
	(void)state;
	struct sv_prom p = { 0 };
	char name[300];
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	for (int i = 0; i < 2000; i++)
		sv_prom_sample(&p, "qsup_big", (const char *const[]){ "guest", name, NULL }, i);
	char *s = take(&p);
	assert_int_equal(strlen(s), 2000 * (strlen("qsup_big{guest=\"\"} \n") + 299) + 10 +
	                 90 * 2 + 900 * 3 + 1000 * 4);
	free(s);
	struct sv_prom empty = { 0 };
	s = take(&empty);
	assert_string_equal(s, "");
	free(s);
}

static void test_listen_parse(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	struct sv_error err = { 0 };
	assert_int_equal(sv_http_parse_listen("9120", &ss, &err), 0);
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	assert_int_equal(v4->sin_family, AF_INET);
	assert_int_equal(ntohs(v4->sin_port), 9120);
	assert_int_equal(ntohl(v4->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(sv_http_parse_listen(":9121", &ss, &err), 0);
	assert_int_equal(ntohl(v4->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(sv_http_parse_listen("0.0.0.0:80", &ss, &err), 0);
	assert_int_equal(v4->sin_addr.s_addr, 0);
	assert_int_equal(sv_http_parse_listen("[::1]:9120", &ss, &err), 0);
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	assert_int_equal(v6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(v6->sin6_port), 9120);
	const char *bad[] = { "", "localhost:9120", "127.0.0.1:", "127.0.0.1:65536",
	                      "127.0.0.1:-1", "127.0.0.1:9x", "1.2.3:80", "[::1:80" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		if (sv_http_parse_listen(bad[i], &ss, &err) == 0)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(err.msg, "--metrics-listen"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_family),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_big),
		cmocka_unit_test(test_listen_parse),
	};
	return cmocka_run_group_tests_name("promtext", tests, NULL, NULL);
}
