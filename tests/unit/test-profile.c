/*
 * Unit tests for profile parsing and the helpers under it (util.c, host.c)
 * and for the parts of the argv builder the golden files cannot reach
 * (inherited fds, odd run dirs). The schema's output is covered by the
 * golden cases in tests/argv/ (test-argv.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>
#include <cmocka.h>

#include "argv.h"
#include "host.h"
#include "profile.h"
#include "util.h"

#define MIB (1ull << 20)

/* ------------------------------------------------------------ util */

static void test_escape(void **state)
{
	static const char *const cases[][2] = {
		{ "", "" }, { "abc", "abc" }, { "a,b", "a,,b" }, { ",", ",," },
		{ ",,x,", ",,,,x,," }, { "/img/a,b.qcow2", "/img/a,,b.qcow2" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *e = sv_qemu_escape(cases[i][0]);

		assert_string_equal(e, cases[i][1]);
		free(e);
	}
}

static void test_name_valid(void **state)
{
	char long_name[80];

	(void)state;
	assert_true(sv_name_valid("web1"));
	assert_true(sv_name_valid("a"));
	assert_true(sv_name_valid("9lives"));
	assert_true(sv_name_valid("A.b_c-d"));
	memset(long_name, 'x', 64);
	long_name[64] = '\0';
	assert_true(sv_name_valid(long_name));
	long_name[64] = 'x';
	long_name[65] = '\0';
	assert_false(sv_name_valid(long_name));
	assert_false(sv_name_valid(""));
	assert_false(sv_name_valid("-a"));
	assert_false(sv_name_valid(".a"));
	assert_false(sv_name_valid("_a"));
	assert_false(sv_name_valid("a b"));
	assert_false(sv_name_valid("a/b"));
	assert_false(sv_name_valid("a,b"));
	assert_false(sv_name_valid("caf\xc3\xa9"));
}

static void test_size_parse(void **state)
{
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "0", 0 }, { "512", 512 }, { "1b", 1 }, { "1K", 1024 }, { "1k", 1024 },
		{ "1KiB", 1024 }, { "2M", 2 * MIB }, { "2mib", 2 * MIB },
		{ "3G", 3ull << 30 }, { "1T", 1ull << 40 }, { "1tib", 1ull << 40 },
		{ "8388608T", 1ull << 63 },
	};
	static const char *const bad[] = {
		"", "M", "1.5G", "1 G", "-1", "+1", "1Q", "1GB", "0x10", " 1", "1G ",
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(sv_size_parse(ok[i].s, &v), 0);
		assert_true(v == ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sv_size_parse(bad[i], &v), -EINVAL);
	assert_int_equal(sv_size_parse("8388609T", &v), -ERANGE);
	assert_int_equal(sv_size_parse("99999999999999999999", &v), -ERANGE);
	assert_int_equal(sv_size_parse("16777216T", &v), -ERANGE);
}

static void test_duration_parse(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(sv_duration_parse("5", &v), 0);
	assert_true(v == 5000);
	assert_int_equal(sv_duration_parse("500ms", &v), 0);
	assert_true(v == 500);
	assert_int_equal(sv_duration_parse("7s", &v), 0);
	assert_true(v == 7000);
	assert_int_equal(sv_duration_parse("2m", &v), 0);
	assert_true(v == 120000);
	assert_int_equal(sv_duration_parse("1h", &v), 0);
	assert_true(v == 3600000);
	assert_int_equal(sv_duration_parse("0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(sv_duration_parse("5x", &v), -EINVAL);
	assert_int_equal(sv_duration_parse("m", &v), -EINVAL);
	assert_int_equal(sv_duration_parse("1.5s", &v), -EINVAL);
	assert_int_equal(sv_duration_parse("5 s", &v), -EINVAL);
	assert_int_equal(sv_duration_parse("5S", &v), -EINVAL);
	assert_int_equal(sv_duration_parse("99999999999h", &v), -ERANGE);
}

static void test_uint_bool_parse(void **state)
{
	uint64_t v;
	bool b;

	(void)state;
	assert_int_equal(sv_uint_parse("42", 1, 100, &v), 0);
	assert_true(v == 42);
	assert_int_equal(sv_uint_parse("0", 1, 100, &v), -ERANGE);
	assert_int_equal(sv_uint_parse("101", 1, 100, &v), -ERANGE);
	assert_int_equal(sv_uint_parse("4two", 1, 100, &v), -EINVAL);
	assert_int_equal(sv_uint_parse("", 0, 100, &v), -EINVAL);
	for (const char *const *s = (const char *const[]){ "yes", "On", "TRUE", "1", NULL };
	     *s; s++) {
		assert_int_equal(sv_bool_parse(*s, &b), 0);
		assert_true(b);
	}
	for (const char *const *s = (const char *const[]){ "no", "off", "False", "0", NULL };
	     *s; s++) {
		assert_int_equal(sv_bool_parse(*s, &b), 0);
		assert_false(b);
	}
	assert_int_equal(sv_bool_parse("maybe", &b), -EINVAL);
	assert_int_equal(sv_bool_parse("", &b), -EINVAL);
}

static void test_mac(void **state)
{
	uint8_t a[6], b[6];
	char s[18];

	(void)state;
	assert_int_equal(sv_mac_parse("52:54:00:AB:cd:0f", a), 0);
	sv_mac_format(a, s);
	assert_string_equal(s, "52:54:00:ab:cd:0f");
	assert_int_equal(sv_mac_parse("52:54:00:ab:cd", a), -EINVAL);
	assert_int_equal(sv_mac_parse("52-54-00-ab-cd-0f", a), -EINVAL);
	assert_int_equal(sv_mac_parse("52:54:00:ab:cd:0g", a), -EINVAL);
	/* Stable: fixed for a name and NIC id (the golden files show it too). */
	sv_mac_stable("demo", "lan", a);
	sv_mac_format(a, s);
	assert_string_equal(s, "52:54:00:31:89:95");
	sv_mac_stable("demo", "lan", b);
	assert_memory_equal(a, b, 6);
	sv_mac_stable("demo", "lan2", b);
	assert_memory_not_equal(a, b, 6);
	sv_mac_stable("demo2", "lan", b);
	assert_memory_not_equal(a, b, 6);
	/* "a/b" + "c" and "a" + "b/c" hash the same string: documented. */
	assert_true(b[0] == 0x52 && b[1] == 0x54 && b[2] == 0x00);
}

static void test_path_resolve(void **state)
{
	static const struct { const char *v, *want; } ok[] = {
		{ "/abs/file", "/abs/file" },
		{ "rel/file", "/etc/qsup/rel/file" },
		{ "./x", "/etc/qsup/x" },
		{ "../x", "/etc/x" },
		{ "../../../../x", "/x" },
		{ "a//b/./c", "/etc/qsup/a/b/c" },
		{ "/a,b.qcow2", "/a,b.qcow2" },
		{ "./json:x", "/etc/qsup/json:x" },
		{ "/img/json:x", "/img/json:x" },
		{ "..x/y", "/etc/qsup/..x/y" },
	};
	static const char *const bad[] = {
		"", "/a/../b", "a/../b", "./a/../b", "/a/", "dir/", "json:{}", "nbd:h:1",
		"file:/x", "http://x/y",
	};
	const char *why;
	char *out;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(sv_path_resolve("/etc/qsup", ok[i].v, &out, &why), 0);
		assert_string_equal(out, ok[i].want);
		free(out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = NULL;
		assert_int_equal(sv_path_resolve("/etc/qsup", bad[i], &out, &why), -EINVAL);
		assert_non_null(why);
		assert_null(out);
	}
}

static void test_path_normalize(void **state)
{
	static const char *const cases[][2] = {
		{ "/", "/" }, { "//", "/" }, { "/a/", "/a" }, { "/a/b/..", "/a" },
		{ "/..", "/" }, { "/a/./b//c/.", "/a/b/c" }, { "/a/b/../../..", "/" },
		{ "/abc/de", "/abc/de" },
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strcpy(buf, cases[i][0]);
		sv_path_normalize(buf);
		assert_string_equal(buf, cases[i][1]);
	}
}

static void test_text_clean(void **state)
{
	(void)state;
	assert_true(sv_text_clean(""));
	assert_true(sv_text_clean("plain text, with commas"));
	assert_true(sv_text_clean("r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
	assert_false(sv_text_clean("tab\there"));
	assert_false(sv_text_clean("cr\rhere"));
	assert_false(sv_text_clean("del\x7f"));
	assert_false(sv_text_clean("\xff"));
	assert_false(sv_text_clean("\xc0\xaf"));           /* overlong '/' */
	assert_false(sv_text_clean("\xed\xa0\x80"));       /* surrogate */
	assert_false(sv_text_clean("\xe2\x82"));           /* truncated */
	assert_false(sv_text_clean("\xf4\x90\x80\x80"));   /* above U+10FFFF */
}

static void test_edit_distance(void **state)
{
	(void)state;
	assert_int_equal(sv_edit_distance("memory", "memory", 2), 0);
	assert_int_equal(sv_edit_distance("memroy", "memory", 2), 2);
	assert_int_equal(sv_edit_distance("typ", "type", 2), 1);
	assert_int_equal(sv_edit_distance("colour", "cpus", 2), 3);
	assert_int_equal(sv_edit_distance("", "abc", 5), 3);
}

static void test_strv(void **state)
{
	struct sv_strv sv = { 0 };
	char **v;

	(void)state;
	assert_null(sv_strv_steal(&sv));
	for (int i = 0; i < 100; i++)
		assert_int_equal(sv_strv_pushf(&sv, "item %d", i), 0);
	assert_int_equal(sv.n, 100);
	assert_null(sv.v[100]);
	assert_string_equal(sv.v[42], "item 42");
	v = sv_strv_steal(&sv);
	assert_int_equal(sv.n, 0);
	assert_string_equal(v[99], "item 99");
	sv_strv_free_array(v);
	assert_int_equal(sv_strv_push(&sv, "x"), 0);
	sv_strv_free(&sv);
	assert_null(sv.v);
}

/* ------------------------------------------------------------ profiles */

static struct sv_profile *parse_ok(const char *path, const char *text)
{
	struct sv_strv errs = { 0 };
	struct sv_profile *p = NULL;
	int r = sv_profile_parse(path, text, strlen(text), &p, &errs);

	for (size_t i = 0; i < errs.n; i++)
		print_error("%s\n", errs.v[i]);
	assert_int_equal(r, 0);
	assert_non_null(p);
	sv_strv_free(&errs);
	return p;
}

static void test_profile_defaults(void **state)
{
	struct sv_profile *p = parse_ok("/etc/qsup/web1.ini", "");

	(void)state;
	assert_string_equal(p->name, "web1");
	assert_string_equal(p->dir, "/etc/qsup");
	assert_int_equal(p->guest_line, 0);
	assert_true(p->memory == 512 * MIB);
	assert_true(p->max_memory == 0);
	assert_int_equal(p->slots, 0);
	assert_int_equal(p->cpus, 1);
	assert_int_equal(p->max_cpus, 1);
	assert_string_equal(p->machine, "q35");
	assert_int_equal(p->family, SV_MACHINE_Q35);
	assert_int_equal(p->accel, SV_ACCEL_KVM);
	assert_int_equal(p->accel_line, 0);
	assert_null(p->cpu_model);
	assert_int_equal(p->firmware, SV_FIRMWARE_BIOS);
	assert_null(p->kernel);
	assert_int_equal(p->hotplug_slots, 4);
	assert_false(p->autostart);
	assert_int_equal(p->ndrives, 0);
	assert_int_equal(p->nnics, 0);
	assert_null(p->serial_log);
	assert_false(p->vnc);
	assert_string_equal(p->vnc_listen, "127.0.0.1");
	assert_int_equal(p->restart_policy, SV_RESTART_ON_FAILURE);
	assert_true(p->restart_delay_ms == 1000 && p->restart_max_delay_ms == 60000);
	assert_true(p->restart_burst == 5 && p->restart_interval_ms == 300000);
	assert_true(p->shutdown_timeout_ms == 60000);
	assert_int_equal(p->migrate_caps.n, 0);
	assert_true(p->migrate_downtime_ms == 0 && p->migrate_bandwidth == 0);
	assert_string_equal(p->binary, "/usr/bin/qemu-system-x86_64");
	assert_null(p->user);
	assert_true(p->sandbox);
	assert_int_equal(p->sandbox_spawn, SV_SPAWN_AUTO);
	sv_profile_free(p);
}

static void test_profile_fields(void **state)
{
	static const char text[] =
		"[guest]\n"
		"memory = 2G\nmax-memory = 8G\ncpus = 2\nmax-cpus = 6\n"
		"accel = kvm:tcg\nappend = a=1\nappend = b,2\nkernel = k\n"
		"boot-order = cd root\n"
		"[disk.root]\nfile = img/root.qcow2\nformat = qcow2\nsize = 10G\n"
		"bus = scsi\ncache = none\naio = io_uring\nserial = S1\n"
		"[cdrom.cd]\nfile = /iso/x.iso\n"
		"[nic.lan]\nforward = tcp::2222-:22\nforward = udp:10.0.0.1:53-10.0.2.15:5353\n"
		"[nic.br]\ntype = bridge\nbridge = br0\nmac = 52:54:00:00:00:02\n"
		"[restart]\ndelay = 250ms\nmax-delay = 10m\n"
		"[migration]\ncapabilities = xbzrle,multifd\nbandwidth = 100M\n"
		"[qemu]\nextra-arg = -snapshot\nextra-arg = -device\n";
	struct sv_profile *p = parse_ok("profiles/web2.ini", text);
	const struct sv_drive *d;
	const struct sv_nic *n;
	uint8_t mac[6];

	(void)state;
	assert_string_equal(p->name, "web2");
	assert_true(p->memory == 2048 * MIB && p->max_memory == 8192 * MIB);
	assert_int_equal(p->slots, 4);                  /* default with max-memory */
	assert_int_equal(p->cpus, 2);
	assert_int_equal(p->max_cpus, 6);
	assert_int_equal(p->accel, SV_ACCEL_KVM_TCG);
	assert_int_equal(p->accel_line, 6);
	assert_string_equal(p->append, "a=1 b,2");
	assert_string_equal(p->boot_order.v[0], "cd");
	assert_int_equal(p->ndrives, 2);
	d = &p->drives[0];
	assert_string_equal(d->id, "root");
	assert_int_equal(d->line, 11);
	assert_false(d->cdrom);
	assert_non_null(strstr(d->file, "/profiles/img/root.qcow2"));
	assert_true(d->file[0] == '/');
	assert_string_equal(d->format, "qcow2");
	assert_true(d->size == 10ull << 30);
	assert_int_equal(d->bus, SV_BUS_SCSI);
	assert_int_equal(d->cache, SV_CACHE_NONE);
	assert_int_equal(d->aio, SV_AIO_IO_URING);
	assert_string_equal(d->serial, "S1");
	d = &p->drives[1];
	assert_true(d->cdrom && d->read_only);
	assert_string_equal(d->format, "raw");
	assert_int_equal(d->bus, SV_BUS_SATA);
	assert_int_equal(p->nnics, 2);
	n = &p->nics[0];
	assert_int_equal(n->type, SV_NIC_USER);
	assert_int_equal(n->nforwards, 2);
	assert_string_equal(n->forwards[0].host_addr, "127.0.0.1");
	assert_int_equal(n->forwards[0].host_port, 2222);
	assert_string_equal(n->forwards[0].guest_addr, "");
	assert_true(n->forwards[1].udp);
	assert_string_equal(n->forwards[1].guest_addr, "10.0.2.15");
	sv_mac_stable("web2", "lan", mac);
	assert_memory_equal(n->mac, mac, 6);
	n = &p->nics[1];
	assert_int_equal(n->type, SV_NIC_BRIDGE);
	assert_int_equal(n->mac[5], 2);
	assert_true(p->restart_delay_ms == 250 && p->restart_max_delay_ms == 600000);
	assert_int_equal(p->migrate_caps.n, 2);
	assert_true(p->migrate_bandwidth == 100 * MIB);
	assert_int_equal(p->extra_args.n, 2);
	assert_string_equal(p->extra_args.v[0], "-snapshot");
	assert_int_equal(sv_profile_find_device(p, "br"), 3);
	assert_int_equal(sv_profile_find_device(p, "nope"), -1);
	sv_profile_free(p);
}

/* Where each key was written, for messages that come after parsing
 * (qsupd --check's host checks): the key's line, else its section's,
 * else 0; a repeated key keeps its first line. */
static void test_profile_lines(void **state)
{
	(void)state;
	struct sv_profile *p = parse_ok("/etc/qsup/l.ini",
	        "; a comment\n[guest]\nmemory = 64M\n\n[disk.root]\nformat = raw\n"
	        "file = /srv/root.img\n[nic.lan]\nforward = tcp::2222-:22\n"
	        "forward = tcp::8080-:80\n");
	assert_int_equal(sv_profile_line(p, "guest", "memory"), 3);
	assert_int_equal(sv_profile_line(p, "guest", "cpus"), 2);       /* the header */
	assert_int_equal(sv_profile_line(p, "guest", NULL), 2);
	assert_int_equal(sv_profile_line(p, "disk.root", "file"), 7);
	assert_int_equal(sv_profile_line(p, "disk.root", "format"), 6);
	assert_int_equal(sv_profile_line(p, "disk.roo", "file"), 0);    /* no prefixes */
	assert_int_equal(sv_profile_line(p, "disk.root", "fil"), 5);
	assert_int_equal(sv_profile_line(p, "nic.lan", "forward"), 9);
	assert_int_equal(sv_profile_line(p, "display", "vnc"), 0);
	sv_profile_free(p);
}

static void test_profile_errors_collected(void **state)
{
	static const char text[] =
		"[guest]\nmemory = lots\n"
		"[disk.a]\nfile = /x\n"          /* no format: reported at line 3 */
		"[nic.b]\nmodle = virtio\n"
		"[guest]\n";
	struct sv_strv errs = { 0 };
	struct sv_profile *p = (void *)1;

	(void)state;
	assert_int_equal(sv_profile_parse("t/bad.ini", text, strlen(text), &p, &errs),
	                 -EINVAL);
	assert_null(p);
	assert_int_equal(errs.n, 4);
	assert_true(!strncmp(errs.v[0], "t/bad.ini:2: [guest] memory: ", 29));
	assert_true(!strncmp(errs.v[1], "t/bad.ini:3: [disk.a] format: missing", 37));
	assert_true(!strncmp(errs.v[2], "t/bad.ini:6: [nic.b] modle: unknown key; did "
	                     "you mean model?", 51));
	assert_true(!strncmp(errs.v[3], "t/bad.ini:7: [guest]: section given twice", 41));
	sv_strv_free(&errs);
}

static void test_profile_nul_byte(void **state)
{
	static const char text[] = "[guest]\nmemory = 1G\0junk\ncpus = 2\n";
	struct sv_strv errs = { 0 };
	struct sv_profile *p;

	(void)state;
	assert_int_equal(sv_profile_parse("n.ini", text, sizeof(text) - 1, &p, &errs),
	                 -EINVAL);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.v[0], "n.ini:2: holds a NUL byte; not allowed");
	sv_strv_free(&errs);
}

static void test_profile_file_name(void **state)
{
	struct sv_strv errs = { 0 };
	struct sv_profile *p;

	(void)state;
	assert_int_equal(sv_profile_parse("/etc/web1.conf", "", 0, &p, &errs), -EINVAL);
	assert_int_equal(errs.n, 1);
	assert_non_null(strstr(errs.v[0], "must end in .ini"));
	sv_strv_free(&errs);
	assert_int_equal(sv_profile_parse("/etc/.ini", "", 0, &p, &errs), -EINVAL);
	sv_strv_free(&errs);
	p = parse_ok("a.b-c_d.ini", "");
	assert_string_equal(p->name, "a.b-c_d");
	sv_profile_free(p);
}

static void test_profile_load(void **state)
{
	char dir[] = "/tmp/qsup-test-profile-XXXXXX", path[64];
	struct sv_strv errs = { 0 };
	struct sv_profile *p;
	FILE *f;

	(void)state;
	assert_int_equal(sv_profile_load("/nonexistent/x.ini", &p, &errs), -ENOENT);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.v[0], "/nonexistent/x.ini: cannot read: No such file "
	                    "or directory");
	sv_strv_free(&errs);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/big.ini", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < SV_PROFILE_MAX_BYTES / 16 + 1; i++)
		fputs(";;;;;;;;;;;;;;;\n", f);
	fclose(f);
	assert_int_equal(sv_profile_load(path, &p, &errs), -EFBIG);
	assert_non_null(strstr(errs.v[0], "larger than"));
	sv_strv_free(&errs);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("[guest]\nmemory = 1G\n", f);
	fclose(f);
	assert_int_equal(sv_profile_load(path, &p, &errs), 0);
	assert_string_equal(p->name, "big");
	assert_string_equal(p->dir, dir);
	sv_profile_free(p);
	unlink(path);
	rmdir(dir);
}

/* A symlinked profile takes relative paths from its target's directory,
 * and must keep the target's name; the digest follows the bytes. */
static void test_profile_symlink_and_digest(void **state)
{
	char dir[] = "/tmp/qsup-test-link-XXXXXX", real[128], link[128], other[128], sub[96];
	struct sv_strv errs = { 0 };
	struct sv_profile *p, *q;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/vms", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(real, sizeof(real), "%s/vms/web1.ini", dir);
	f = fopen(real, "w");
	assert_non_null(f);
	fputs("[guest]\nkernel = vmlinux\n", f);
	fclose(f);
	snprintf(link, sizeof(link), "%s/web1.ini", dir);
	assert_int_equal(symlink(real, link), 0);
	assert_int_equal(sv_profile_load(link, &p, &errs), 0);
	assert_string_equal(p->name, "web1");
	assert_string_equal(p->dir, sub);
	assert_non_null(strstr(p->kernel, "/vms/vmlinux"));
	assert_int_equal(sv_profile_load(real, &q, &errs), 0);
	assert_true(p->digest == q->digest);
	sv_profile_free(q);
	f = fopen(real, "a");
	fputs("cpus = 2\n", f);
	fclose(f);
	assert_int_equal(sv_profile_load(real, &q, &errs), 0);
	assert_true(p->digest != q->digest);
	sv_profile_free(p);
	sv_profile_free(q);
	snprintf(other, sizeof(other), "%s/web2.ini", dir);
	assert_int_equal(symlink(real, other), 0);
	assert_int_equal(sv_profile_load(other, &p, &errs), -EINVAL);
	assert_non_null(strstr(errs.v[0], "must have the same name"));
	sv_strv_free(&errs);
	unlink(other);
	unlink(link);
	unlink(real);
	rmdir(sub);
	rmdir(dir);
}

/* ------------------------------------------------------------ argv, host */

static bool has_arg(const struct sv_argv *a, const char *s)
{
	for (size_t i = 0; i < a->argc; i++)
		if (!strcmp(a->argv[i], s))
			return true;
	return false;
}

static void test_argv_fds_and_rundir(void **state)
{
	struct sv_profile *p = parse_ok("/p/web1.ini", "[serial]\nlog = /l,og\n");
	struct sv_error err = { 0 };
	struct sv_facts f;
	struct sv_argv a;

	(void)state;
	assert_int_equal(sv_facts_init(&f, "/run/q,s", "web1"), 0);
	assert_int_equal(sv_argv_build(p, &f, &a, &err), 0);
	assert_null(a.argv[a.argc]);
	assert_int_equal(a.accel, SV_ACCEL_KVM);
	assert_true(has_arg(&a, "socket,id=qmp,path=/run/q,,s/web1/qmp.sock,server=on,wait=off"));
	/* The log is QEMU's through an fd: the path is only in the fd list. */
	assert_true(has_arg(&a, "socket,id=serial0,path=/run/q,,s/web1/serial.sock,"
	                    "server=on,wait=off,logfile=/dev/fdset/7,logappend=on"));
	assert_true(has_arg(&a, "fd=7,set=7,opaque=serial.log"));
	assert_int_equal(a.nfds, 1);
	assert_int_equal(a.fds[0].fd, 7);
	assert_string_equal(a.fds[0].path, "/l,og");
	assert_int_equal(a.fds[0].flags & O_ACCMODE, O_WRONLY);
	sv_argv_free(&a);
	f.qmp_fd = 3;
	f.serial_fd = 4;
	assert_int_equal(sv_argv_build(p, &f, &a, &err), 0);
	assert_true(has_arg(&a, "socket,id=qmp,fd=3,server=on,wait=off"));
	/* The console log is kept when QEMU gets the socket as an fd. */
	assert_true(has_arg(&a, "socket,id=serial0,fd=4,server=on,wait=off,"
	                    "logfile=/dev/fdset/7,logappend=on"));
	sv_argv_free(&a);
	assert_null(a.argv);
	sv_profile_free(p);
}

/* [guest] agent = yes with the socket passed: qsupd binds agent.sock (an
 * SV_FD_SOCKET need, listed before the disks) and QEMU gets its fd. */
static void test_argv_agent_fd(void **state)
{
	struct sv_profile *p = parse_ok("/p/web1.ini", "[guest]\nagent = yes\n"
	                                "[disk.root]\nfile = /d.raw\nformat = raw\n");
	struct sv_error err = { 0 };
	struct sv_facts f;
	struct sv_argv a;

	(void)state;
	assert_true(p->agent);
	assert_int_equal(sv_facts_init(&f, "/run/qs", "web1"), 0);
	f.qmp_fd = 3;
	f.serial_fd = 4;
	f.agent_pass = true;
	assert_int_equal(sv_argv_build(p, &f, &a, &err), 0);
	assert_true(has_arg(&a, "socket,id=agent,fd=7,server=on,wait=off"));
	assert_true(has_arg(&a, "{\"driver\":\"virtserialport\",\"id\":\"agent.port\","
	                    "\"bus\":\"agent.0.0\",\"chardev\":\"agent\","
	                    "\"name\":\"org.qemu.guest_agent.0\"}"));
	assert_int_equal(a.nfds, 2);
	assert_int_equal(a.fds[0].fd, 7);
	assert_int_equal(a.fds[0].kind, SV_FD_SOCKET);
	assert_string_equal(a.fds[0].path, "/run/qs/web1/agent.sock");
	assert_int_equal(a.fds[1].fd, 8);
	assert_string_equal(a.fds[1].path, "/d.raw");
	sv_argv_free(&a);
	sv_profile_free(p);
	/* No agent key: no channel, no socket. */
	p = parse_ok("/p/web1.ini", "[guest]\n");
	assert_false(p->agent);
	assert_int_equal(sv_argv_build(p, &f, &a, &err), 0);
	assert_int_equal(a.nfds, 0);
	for (size_t i = 0; i < a.argc; i++)
		assert_null(strstr(a.argv[i], "agent"));
	sv_argv_free(&a);
	sv_profile_free(p);
}

static void test_facts_too_long(void **state)
{
	char dir[120];
	struct sv_facts f;

	(void)state;
	memset(dir, 'd', sizeof(dir) - 1);
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	assert_int_equal(sv_facts_init(&f, dir, "web1"), -ENAMETOOLONG);
	dir[80] = '\0';
	assert_int_equal(sv_facts_init(&f, dir, "web1"), 0);
	assert_int_equal(f.qmp_fd, -1);
	assert_true(f.kvm_usable);
}

static void test_kvm_probe(void **state)
{
	struct sv_error err = { 0 };

	(void)state;
	assert_int_equal(sv_host_kvm_probe("/nonexistent/kvm", &err), -ENOENT);
	assert_int_equal(err.code, -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/kvm"));
	assert_true(sv_host_kvm_probe("/dev/null", &err) < 0);
	assert_true(sv_host_kvm_probe("/dev/null", NULL) < 0);
	if (sv_host_kvm_probe(NULL, &err) == 0)
		print_message("# note: /dev/kvm is usable here\n");
	else
		print_message("# note: /dev/kvm is not usable here: %s\n", err.msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_size_parse),
		cmocka_unit_test(test_duration_parse),
		cmocka_unit_test(test_uint_bool_parse),
		cmocka_unit_test(test_mac),
		cmocka_unit_test(test_path_resolve),
		cmocka_unit_test(test_path_normalize),
		cmocka_unit_test(test_text_clean),
		cmocka_unit_test(test_edit_distance),
		cmocka_unit_test(test_strv),
		cmocka_unit_test(test_profile_defaults),
		cmocka_unit_test(test_profile_fields),
		cmocka_unit_test(test_profile_lines),
		cmocka_unit_test(test_profile_errors_collected),
		cmocka_unit_test(test_profile_nul_byte),
		cmocka_unit_test(test_profile_file_name),
		cmocka_unit_test(test_profile_load),
		cmocka_unit_test(test_profile_symlink_and_digest),
		cmocka_unit_test(test_argv_fds_and_rundir),
		cmocka_unit_test(test_argv_agent_fd),
		cmocka_unit_test(test_facts_too_long),
		cmocka_unit_test(test_kvm_probe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
