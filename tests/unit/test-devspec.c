/*
 * One device schema: a disk's and a NIC's keys are defined once, by the
 * profile's key table (supervisor/profile/profile_keys.c), and the attach
 * verb and the --persist overlay check them through it
 * (sv_profile_device_key, used by sv_hotplug_check). For each value below,
 * the profile and attach must agree: both accept it, or both refuse it
 * with the same words. Then what attach adds (a bus and model it can plug,
 * a boolean read-only) and the old spellings (readonly, tap).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hotplug.h"
#include "profile.h"
#include "util.h"

static struct sv_profile *profile(void)
{
	static const char text[] = "[guest]\nmemory = 512M\n[nic.lan]\ntype = user\n";
	struct sv_profile *p = NULL;
	struct sv_strv errs = { 0 };
	assert_int_equal(sv_profile_parse("/etc/qsup/profiles/web1.ini", text, sizeof(text) - 1,
	                                  &p, &errs), 0);
	sv_strv_free(&errs);
	return p;
}

/* An attach spec of kind with key = value (a string) and what the kind
 * needs besides. */
static json_t *spec_with(const char *kind, const char *key, const char *value)
{
	json_t *s = !strcmp(kind, "disk")
	          ? json_pack("{s:s, s:s, s:s, s:s, s:b}", "kind", "disk", "id", "d1", "file",
	                      "/dev/null", "format", "raw", "read-only", 1)
	          : json_pack("{s:s, s:s}", "kind", "nic", "id", "n1");
	json_object_set_new(s, key, json_string(value));
	if (!strcmp(key, "ifname"))
		json_object_set_new(s, "type", json_string("tap"));
	if (!strcmp(key, "bridge"))
		json_object_set_new(s, "type", json_string("bridge"));
	return s;
}

static void test_profile_and_attach_agree(void **state)
{
	static const struct { const char *kind, *key, *value; bool good; } rows[] = {
		{ "disk", "serial", "QM00001", true },
		{ "disk", "serial", "a,b", false },          /* a comma: QEMU's separator */
		{ "disk", "serial", "a b", false },
		{ "disk", "serial", "x\"y", false },
		{ "disk", "serial", "-opt", false },         /* taken for an option */
		{ "disk", "serial", "123456789012345678901", false },   /* 21 */
		{ "disk", "cache", "none", true },
		{ "disk", "cache", "sometimes", false },
		{ "disk", "format", "qcow2", true },
		{ "disk", "format", "raw,file.locking=off", false },
		{ "nic", "mac", "52:54:00:12:34:56", true },
		{ "nic", "mac", "01:00:5e:00:00:01", false },   /* multicast */
		{ "nic", "mac", "00:00:00:00:00:00", false },
		{ "nic", "ifname", "qtap0", true },
		{ "nic", "ifname", "qsup%d", false },        /* a kernel name pattern */
		{ "nic", "ifname", "tap\xc3\xa9", false },
		{ "nic", "ifname", "a234567890123456", false },   /* 16 */
		{ "nic", "bridge", "br0", true },
		{ "nic", "bridge", "br/0", false },
		{ "nic", "model", "virtio", true },
	};
	struct sv_profile *p = profile();
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sv_error perr = { 0 }, aerr = { 0 };
		int prc = sv_profile_device_key(rows[i].kind, rows[i].key, rows[i].value, &perr);
		json_t *s = spec_with(rows[i].kind, rows[i].key, rows[i].value);
		int arc = sv_hotplug_check(p, s, &aerr);
		printf("# %s %s=%s: profile %s, attach %s\n", rows[i].kind, rows[i].key,
		       rows[i].value, prc ? perr.msg : "ok", arc ? aerr.msg : "ok");
		assert_int_equal(prc == 0, rows[i].good);
		assert_int_equal(arc == 0, rows[i].good);
		if (!rows[i].good) {
			assert_string_equal(aerr.msg, perr.msg);   /* the same words */
			assert_string_equal(sv_error_class(&aerr), "InvalidArgument");
			assert_non_null(strstr(perr.msg, rows[i].key));
		}
		json_decref(s);
	}
	sv_profile_free(p);
}

static void test_profile_key_errors(void **state)
{
	struct sv_error err = { 0 };
	(void)state;
	assert_int_equal(sv_profile_device_key("disk", "colour", "blue", &err), -ENOENT);
	assert_non_null(strstr(err.msg, "colour"));
	assert_int_equal(sv_profile_device_key("guest", "memory", "1G", &err), -ENOENT);
	assert_int_equal(sv_profile_device_key("cdrom", "bus", "sata", &err), 0);
	assert_int_equal(sv_profile_device_key("cdrom", "bus", "virtio", &err), -EINVAL);
	assert_int_equal(sv_profile_device_key("disk", "read-only", "yes", &err), 0);
	assert_int_equal(sv_profile_device_key("disk", "read-only", "maybe", &err), -EINVAL);
	assert_int_equal(sv_profile_device_key("disk", "serial", "", &err), -EINVAL);
	assert_int_equal(sv_profile_device_key("disk", "serial", "a\nb", &err), -EINVAL);
	assert_int_equal(sv_profile_device_key("nic", "type", "bridge", &err), 0);
}

/* What attach adds to the profile's rules, and the old spellings. */
static void test_attach_rules_and_aliases(void **state)
{
	struct sv_profile *p = profile();
	struct sv_error err = { 0 };
	json_t *s;
	(void)state;
	/* A profile bus that hot-plug cannot plug into. */
	s = spec_with("disk", "bus", "ide");
	assert_int_equal(sv_hotplug_check(p, s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "virtio or scsi"));
	json_decref(s);
	/* A profile model that is not PCIe. */
	s = spec_with("nic", "model", "rtl8139");
	assert_int_equal(sv_hotplug_check(p, s, &err), -EINVAL);
	json_decref(s);
	/* readonly and tap: the old spellings of read-only and ifname. */
	s = json_pack("{s:s, s:s, s:s, s:s, s:b}", "kind", "disk", "id", "d1", "file",
	              "/dev/null", "format", "raw", "readonly", 1);
	assert_int_equal(sv_hotplug_check(p, s, &err), 0);
	assert_true(json_is_true(json_object_get(s, "read-only")));
	assert_null(json_object_get(s, "readonly"));
	json_decref(s);
	s = json_pack("{s:s, s:s, s:s, s:s}", "kind", "nic", "id", "n1", "type", "tap", "tap",
	              "qtap0");
	assert_int_equal(sv_hotplug_check(p, s, &err), 0);
	assert_string_equal(json_string_value(json_object_get(s, "ifname")), "qtap0");
	assert_null(json_object_get(s, "tap"));
	json_decref(s);
	s = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kind", "nic", "id", "n1", "type", "tap",
	              "tap", "qtap0", "ifname", "qtap1");
	assert_int_equal(sv_hotplug_check(p, s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "given twice"));
	json_decref(s);
	/* A tap NIC needs its name; a user NIC takes none. */
	s = json_pack("{s:s, s:s, s:s}", "kind", "nic", "id", "n1", "type", "tap");
	assert_int_equal(sv_hotplug_check(p, s, &err), -EINVAL);
	json_decref(s);
	s = json_pack("{s:s, s:s, s:s}", "kind", "nic", "id", "n1", "ifname", "qtap0");
	assert_int_equal(sv_hotplug_check(p, s, &err), -EINVAL);
	json_decref(s);
	sv_profile_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profile_and_attach_agree),
		cmocka_unit_test(test_profile_key_errors),
		cmocka_unit_test(test_attach_rules_and_aliases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
