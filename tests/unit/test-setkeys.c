/* The pure part of live resource control (supervisor/profile/setkeys.c):
 * I/O limit values and rules, CPU lists, set items and their checks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "setkeys.h"

static void test_iotune_values(void **state)
{
	uint64_t v;
	char why[200];
	(void)state;
	int bps = sv_iotune_index("bps-write"), iops = sv_iotune_index("iops-total-max");
	int len = sv_iotune_index("bps-read-max-length");
	assert_int_equal(bps, SV_IOT_BPS_WR);
	assert_int_equal(iops, SV_IOT_IOPS + SV_IOT_MAX);
	assert_int_equal(len, SV_IOT_BPS_RD + SV_IOT_LEN);
	assert_int_equal(sv_iotune_index("bps"), -1);
	assert_string_equal(sv_iotune_qmp[bps], "bps_wr");
	assert_string_equal(sv_iotune_qmp[iops], "iops_max");
	assert_string_equal(sv_iotune_qmp[len], "bps_rd_max_length");

	assert_int_equal(sv_iotune_parse(bps, "10M", &v, why, sizeof(why)), 0);
	assert_int_equal(v, 10 << 20);
	assert_int_equal(sv_iotune_parse(bps, "4K", &v, why, sizeof(why)), 0);
	assert_int_equal(sv_iotune_parse(bps, "none", &v, why, sizeof(why)), 0);
	assert_int_equal(v, 0);
	assert_int_equal(sv_iotune_parse(bps, "4095", &v, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "too small"));
	assert_int_equal(sv_iotune_parse(bps, "2T", &v, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "too large"));
	assert_int_equal(sv_iotune_parse(bps, "1M,x=1", &v, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "not a size"));
	assert_int_equal(sv_iotune_parse(iops, "100000000", &v, why, sizeof(why)), 0);
	assert_int_equal(sv_iotune_parse(iops, "100000001", &v, why, sizeof(why)), -EINVAL);
	assert_int_equal(sv_iotune_parse(iops, "1k", &v, why, sizeof(why)), -EINVAL);
	assert_int_equal(sv_iotune_parse(len, "3600", &v, why, sizeof(why)), 0);
	assert_int_equal(sv_iotune_parse(len, "3601", &v, why, sizeof(why)), -EINVAL);
}

static void test_iotune_rules(void **state)
{
	uint64_t v[SV_IOTUNE_N] = { 0 };
	char why[200];
	(void)state;
	assert_int_equal(sv_iotune_check(v, why, sizeof(why)), 0);
	assert_false(sv_iotune_any(v));
	v[SV_IOT_BPS] = 1 << 20;
	v[SV_IOT_IOPS_RD] = 100;
	v[SV_IOT_IOPS_WR] = 50;
	assert_int_equal(sv_iotune_check(v, why, sizeof(why)), 0);
	assert_true(sv_iotune_any(v));
	v[SV_IOT_BPS_RD] = 1 << 20;   /* total with read */
	assert_int_equal(sv_iotune_check(v, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "bps-total cannot be given with bps-read"));
	v[SV_IOT_BPS_RD] = 0;
	v[SV_IOT_BPS + SV_IOT_MAX] = 512 << 10;   /* a burst below its limit */
	assert_int_equal(sv_iotune_check(v, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "is below bps-total"));
	v[SV_IOT_BPS + SV_IOT_MAX] = 2 << 20;
	v[SV_IOT_BPS + SV_IOT_LEN] = 10;
	assert_int_equal(sv_iotune_check(v, why, sizeof(why)), 0);
	v[SV_IOT_IOPS_WR + SV_IOT_LEN] = 10;   /* a length without its burst */
	assert_int_equal(sv_iotune_check(v, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "iops-write-max-length needs iops-write-max"));
	v[SV_IOT_IOPS_WR + SV_IOT_LEN] = 0;
	v[SV_IOT_BPS + SV_IOT_MAX] = 1ull << 40;   /* 1T for 3600 s: past QEMU's 10^15 */
	v[SV_IOT_BPS + SV_IOT_LEN] = 3600;
	assert_int_equal(sv_iotune_check(v, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "bps-total-max-length (3600 s) is too long for bps-total-max"));
	v[SV_IOT_BPS + SV_IOT_LEN] = 900;   /* 1T for 900 s: 9.9 * 10^14 */
	assert_int_equal(sv_iotune_check(v, why, sizeof(why)), 0);
	v[SV_IOT_BPS + SV_IOT_MAX] = 2 << 20;
	v[SV_IOT_BPS + SV_IOT_LEN] = 10;
	v[SV_IOT_IOPS_WR + SV_IOT_LEN] = 0;
	v[SV_IOT_BPS_WR + SV_IOT_MAX] = 1 << 20;   /* with the total's burst */
	assert_int_equal(sv_iotune_check(v, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "bps-total-max cannot be given with bps-write-max"));
	v[SV_IOT_BPS] = v[SV_IOT_BPS + SV_IOT_MAX] = v[SV_IOT_BPS + SV_IOT_LEN] = 0;
	/* a burst without its limit */
	assert_int_equal(sv_iotune_check(v, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "bps-write-max needs bps-write"));
}

static void test_cpulist(void **state)
{
	cpu_set_t set;
	char why[200], buf[64];
	(void)state;
	assert_int_equal(sv_cpulist_parse("3,0-1,2,7", &set, why, sizeof(why)), 0);
	sv_cpulist_format(&set, buf, sizeof(buf));
	assert_string_equal(buf, "0-3,7");
	assert_int_equal(sv_cpulist_parse("5", &set, why, sizeof(why)), 0);
	sv_cpulist_format(&set, buf, sizeof(buf));
	assert_string_equal(buf, "5");
	static const char *const bad[] = { "", "0-", "-1", "3-1", "0,,1", "0,", "a", "0 1",
	                                   "1.5" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sv_cpulist_parse(bad[i], &set, why, sizeof(why)) != -EINVAL)
			fail_msg("\"%s\" was taken as a CPU list", bad[i]);
		assert_non_null(strstr(why, "not a CPU list"));
	}
	assert_int_equal(sv_cpulist_parse("0-99999", &set, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "names a CPU above"));
}

static void test_set_parse(void **state)
{
	struct sv_set_item it;
	char why[600];
	(void)state;
	assert_int_equal(sv_set_parse("disk.root.bps-write=10M", &it, why, sizeof(why)), 0);
	assert_int_equal(it.kind, SV_SET_IOTUNE);
	assert_string_equal(it.disk, "root");
	assert_int_equal(it.index, SV_IOT_BPS_WR);
	assert_int_equal(it.n, 10 << 20);
	assert_int_equal(sv_set_parse("cpu-affinity=1,0", &it, why, sizeof(why)), 0);
	assert_int_equal(it.kind, SV_SET_CPU);
	assert_string_equal(it.value, "0-1");
	assert_int_equal(sv_set_parse("emulator-affinity=0", &it, why, sizeof(why)), 0);
	assert_int_equal(it.kind, SV_SET_EMULATOR);
	assert_int_equal(sv_set_parse("balloon=1G", &it, why, sizeof(why)), 0);
	assert_int_equal(it.kind, SV_SET_BALLOON);
	assert_int_equal(it.n, 1 << 30);
	static const struct { const char *kv, *why; } bad[] = {
		{ "balloon", "use KEY=VALUE" },
		{ "=1", "use KEY=VALUE" },
		{ "disk.root=1M", "use disk.ID.LIMIT" },
		{ "disk.9x.bps-write=1M", "not a disk id" },
		{ "disk.root.bps=1M", "not an I/O limit" },
		{ "disk.root.bps-write=1", "too small" },
		{ "cpu-affinity=x", "not a CPU list" },
		{ "balloon=8M", "too small" },
		{ "balloon=100.5M", "not a size" },
		{ "balloon=1048577K", "not a multiple of 1M" },
		{ "memory=1G", "not a key for set" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sv_set_parse(bad[i].kv, &it, why, sizeof(why)) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i].kv);
		if (!strstr(why, bad[i].why))
			fail_msg("\"%s\": \"%s\", expected \"%s\"", bad[i].kv, why, bad[i].why);
	}
}

static void test_set_check(void **state)
{
	struct sv_drive drives[2] = { { .id = "root" }, { .id = "cd", .cdrom = true } };
	struct sv_profile p = { .name = "g", .memory = 512ull << 20, .balloon = true,
	                        .drives = drives, .ndrives = 2 };
	const char *ids[] = { "root", "hp" };
	uint64_t cur[2][SV_IOTUNE_N] = { { 0 } };
	struct sv_set_item it[3];
	cpu_set_t host;
	char why[600];
	(void)state;
	CPU_ZERO(&host);
	CPU_SET(0, &host);
	CPU_SET(1, &host);
	cur[0][SV_IOT_BPS] = 1 << 20;   /* root: bps-total now */
#define CHECK(n) sv_set_check(&p, it, n, ids, (const uint64_t (*)[SV_IOTUNE_N])cur, 2, &host, \
                              why, sizeof(why))
	assert_int_equal(sv_set_parse("disk.root.bps-write=1M", &it[0], why, sizeof(why)), 0);
	assert_int_equal(CHECK(1), -EINVAL);
	assert_non_null(strstr(why, "bps-total cannot be given with bps-write"));
	/* lifting the total in the same call makes it fine: all items count */
	assert_int_equal(sv_set_parse("disk.root.bps-total=0", &it[1], why, sizeof(why)), 0);
	assert_int_equal(CHECK(2), 0);
	assert_int_equal(sv_set_parse("disk.hp.iops-read=5", &it[0], why, sizeof(why)), 0);
	assert_int_equal(CHECK(1), 0);
	assert_int_equal(sv_set_parse("disk.cd.iops-read=5", &it[0], why, sizeof(why)), 0);
	assert_int_equal(CHECK(1), -EINVAL);
	assert_non_null(strstr(why, "CD-ROM"));
	assert_int_equal(sv_set_parse("disk.zz.iops-read=5", &it[0], why, sizeof(why)), 0);
	assert_int_equal(CHECK(1), -EINVAL);
	assert_non_null(strstr(why, "g has no disk zz"));
	assert_int_equal(sv_set_parse("balloon=512M", &it[0], why, sizeof(why)), 0);
	assert_int_equal(CHECK(1), 0);
	assert_int_equal(sv_set_parse("balloon=513M", &it[0], why, sizeof(why)), 0);
	assert_int_equal(CHECK(1), -EINVAL);
	assert_non_null(strstr(why, "above the guest's memory (512 MiB)"));
	p.balloon = false;
	assert_int_equal(sv_set_parse("balloon=256M", &it[0], why, sizeof(why)), 0);
	assert_int_equal(CHECK(1), -EINVAL);
	assert_non_null(strstr(why, "g has no balloon"));
	assert_int_equal(sv_set_parse("cpu-affinity=0-1", &it[0], why, sizeof(why)), 0);
	assert_int_equal(CHECK(1), 0);
	assert_int_equal(sv_set_parse("emulator-affinity=1-3", &it[0], why, sizeof(why)), 0);
	assert_int_equal(CHECK(1), -EINVAL);
	assert_non_null(strstr(why, "the host has no CPU 2-3 (it has 0-1)"));
#undef CHECK
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iotune_values),
		cmocka_unit_test(test_iotune_rules),
		cmocka_unit_test(test_cpulist),
		cmocka_unit_test(test_set_parse),
		cmocka_unit_test(test_set_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
