/*
 * qsupctl top's pure pieces (supervisor/ctl/ctl_top.c): rates from two
 * stats answers (CPU % of one core, disk and network bytes per second),
 * none across a QEMU restart or on the first frame, the sort keys, the
 * table, and byte counts for people.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl.h"

static json_t *guest(const char *name, int pid, double time, double cpu, double rd,
                     double wr, double rx, double uptime)
{
	json_t *g = json_pack("{s:s, s:s, s:f, s:i, s:[], s:[]}", "name", name,
	                      "state", pid ? "running" : "stopped", "uptime", uptime,
	                      "restarts", 2, "disks", "nics");
	if (!pid)
		return g;
	json_object_set_new(g, "pid", json_integer(pid));
	json_object_set_new(g, "time", json_real(time));
	json_object_set_new(g, "cpu_user", json_real(cpu * 0.75));
	json_object_set_new(g, "cpu_system", json_real(cpu * 0.25));
	json_object_set_new(g, "rss", json_real(100 << 20));
	json_array_append_new(json_object_get(g, "disks"), json_pack("{s:s, s:f, s:f}", "id", "a",
	                      "rd_bytes", rd / 2, "wr_bytes", wr));
	json_array_append_new(json_object_get(g, "disks"), json_pack("{s:s, s:f, s:f}", "id", "b",
	                      "rd_bytes", rd / 2, "wr_bytes", 0.0));
	if (rx >= 0)
		json_array_append_new(json_object_get(g, "nics"), json_pack("{s:s, s:f, s:f}",
		                      "id", "lan", "rx_bytes", rx, "tx_bytes", rx / 4));
	return g;
}

static double num(json_t *row, const char *key)
{
	return json_number_value(json_object_get(row, key));
}

static void test_rates(void **state)
{
	(void)state;
	json_t *prev = json_pack("[o, o, o, o]", guest("a", 10, 100, 5, 0, 0, 1000, 60),
	                         guest("b", 20, 100, 1, 4096, 0, -1, 60),
	                         guest("c", 0, 0, 0, 0, 0, 0, 0),
	                         guest("d", 30, 100, 9, 0, 0, -1, 60));
	json_t *cur = json_pack("[o, o, o, o]", guest("a", 10, 102, 6, 0, 2 << 20, 3000, 62),
	                        guest("b", 20, 102, 4, 8192, 0, -1, 62),
	                        guest("c", 0, 0, 0, 0, 0, 0, 0),
	                        guest("d", 31, 102, 0.1, 0, 0, -1, 1));   /* restarted */
	json_t *rows = ctl_top_rows(NULL, cur);
	for (size_t i = 0; i < 4; i++)   /* the first frame: no rates */
		assert_true(num(json_array_get(rows, i), "cpu") < 0);
	json_decref(rows);
	rows = ctl_top_rows(prev, cur);
	json_t *a = json_array_get(rows, 0), *b = json_array_get(rows, 1);
	json_t *c = json_array_get(rows, 2), *d = json_array_get(rows, 3);
	assert_true(num(a, "cpu") > 49.9 && num(a, "cpu") < 50.1);   /* 1 s in 2 */
	assert_true(num(a, "wr") == 1 << 20 && num(a, "rd") == 0);
	assert_true(num(a, "rx") == 1000 && num(a, "tx") == 250);
	assert_true(num(b, "cpu") > 149.9 && num(b, "cpu") < 150.1);   /* 1.5 cores */
	assert_true(num(b, "rd") == 2048);
	assert_true(num(b, "rx") < 0);   /* no tap-backed NIC */
	assert_true(num(c, "cpu") < 0 && num(c, "mem") < 0);
	assert_true(num(d, "cpu") < 0);   /* another QEMU: no rate across it */
	assert_int_equal(json_integer_value(json_object_get(a, "restarts")), 2);

	ctl_top_sort(rows, 'c');
	assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "name")), "b");
	assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 1), "name")), "a");
	ctl_top_sort(rows, 'd');
	assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "name")), "a");
	ctl_top_sort(rows, 'a');
	assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "name")), "a");
	assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 3), "name")), "d");
	ctl_top_sort(rows, 'u');
	assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 3), "name")), "c");

	char buf[4096];
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	ctl_top_sort(rows, 'c');
	ctl_top_print(f, rows, 'c');
	fclose(f);
	printf("%s", buf);
	assert_non_null(strstr(buf, "%CPU*"));
	assert_non_null(strstr(buf, "\nb                    running    150.0    100M    2.0K      0B"));
	assert_non_null(strstr(buf, "\nc                    stopped        -       -       -"));
	json_decref(rows);
	json_decref(prev);
	json_decref(cur);
}

static void test_bytes(void **state)
{
	(void)state;
	char b[16];
	ctl_fmt_bytes(0, b, sizeof(b));
	assert_string_equal(b, "0B");
	ctl_fmt_bytes(1023, b, sizeof(b));
	assert_string_equal(b, "1023B");
	ctl_fmt_bytes(1536, b, sizeof(b));
	assert_string_equal(b, "1.5K");
	ctl_fmt_bytes(163.0 * 1048576, b, sizeof(b));
	assert_string_equal(b, "163M");
	ctl_fmt_bytes(2.0 * 1073741824, b, sizeof(b));
	assert_string_equal(b, "2.0G");
	ctl_fmt_bytes(-1, b, sizeof(b));
	assert_string_equal(b, "-");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_bytes),
	};
	return cmocka_run_group_tests_name("top", tests, NULL, NULL);
}
