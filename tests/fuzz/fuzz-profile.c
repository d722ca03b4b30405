/*
 * libFuzzer harness for profiles and the argv builder. The input is a
 * profile file (/fuzz/guest.ini, so the guest is "guest"). Parsing must
 * either fail with messages or succeed; a profile that parses is built into
 * a QEMU argv three ways (KVM usable with qsupd's inherited QMP and serial
 * fds 3 and 4; KVM unusable with -incoming; socket paths under a run dir
 * holding a comma), and the argv is checked as QEMU would read it:
 *
 * - every element is a clean one-line string, argv[argc] is NULL;
 * - the builder's part is a sequence of options it is known to emit, each
 *   with its value: -device/-blockdev/-netdev values are JSON objects without
 *   duplicate keys, whose ids are well formed and unique and whose references
 *   (drive, netdev, chardev, bus, file) name something defined before;
 *   comma-separated option lists split, by QEMU's rules (",," is a comma),
 *   into keys from a fixed set per option, each once; -kernel, -initrd and
 *   -bios are one canonical absolute path;
 * - values that come from the profile come back whole (nothing truncated or
 *   split), and the extra-arg values follow, unchanged.
 *
 * A broken rule prints what is wrong and aborts, so that libFuzzer and the
 * replay in make check (tests/unit/test-fuzz-replay.c) both notice.
 * When argv.c emits a new option or key, add it to the table below.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "argv.h"
#include "profile.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_PROFILE "/fuzz/guest.ini"
#define FZ_RUN_DIR "/run/q,s=1"
#define FZ_QMP_FD 3
#define FZ_SERIAL_FD 4

static void fz_fail(const char *what, const char *elem) __attribute__((noreturn));
static void fz_fail(const char *what, const char *elem)
{
	fprintf(stderr, "fuzz-profile: %s: \"%s\"\n", what, elem ? elem : "(null)");
	abort();
}

#define FZ_REQUIRE(cond, what, elem) \
	do { if (!(cond)) fz_fail(what, elem); } while (0)

/* ------------------------------------------------------------ the options */

enum fz_kind {
	FZ_FLAG,        /* no value */
	FZ_OPTS,        /* QemuOpts: key=value,key=value */
	FZ_JSON,        /* a JSON object */
	FZ_PATH,        /* one file name, taken whole */
	FZ_TEXT,        /* one string, taken whole (-append) */
};

struct fz_opt {
	const char *name;
	enum fz_kind kind;
	const char *implied;            /* the key a bare first element sets */
	const char *const *firsts;      /* the implied key's values; NULL: any */
	const char *const *keys;        /* the other keys allowed */
};

#define LIST(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

/* What supervisor/profile/argv.c emits, and nothing else. */
static const struct fz_opt fz_opts[] = {
	{ "-name", FZ_OPTS, "guest", NULL, LIST("debug-threads") },
	{ "-nodefaults", FZ_FLAG, NULL, NULL, NULL },
	{ "-no-user-config", FZ_FLAG, NULL, NULL, NULL },
	{ "-S", FZ_FLAG, NULL, NULL, NULL },
	{ "-msg", FZ_OPTS, NULL, NULL, LIST("timestamp") },
	{ "-sandbox", FZ_OPTS, "enable", LIST("on"),
	  LIST("obsolete", "elevateprivileges", "spawn", "resourcecontrol") },
	{ "-machine", FZ_OPTS, "type", NULL, LIST("pflash0", "pflash1") },
	{ "-accel", FZ_OPTS, "accel", LIST("kvm", "tcg"), NONE },
	{ "-cpu", FZ_OPTS, "model", NULL, NONE },
	{ "-m", FZ_OPTS, "size", NULL, LIST("slots", "maxmem") },
	{ "-smp", FZ_OPTS, "cpus", NULL, LIST("maxcpus") },
	{ "-display", FZ_OPTS, "type", LIST("none"), NONE },
	{ "-vnc", FZ_OPTS, "vnc", NULL, NONE },
	{ "-chardev", FZ_OPTS, "backend", LIST("socket"),
	  LIST("id", "path", "fd", "server", "wait", "logfile", "logappend") },
	{ "-mon", FZ_OPTS, NULL, NULL, LIST("chardev", "mode") },
	{ "-add-fd", FZ_OPTS, NULL, NULL, LIST("fd", "set", "opaque") },
	{ "-device", FZ_JSON, NULL, NULL, NULL },
	{ "-blockdev", FZ_JSON, NULL, NULL, NULL },
	{ "-netdev", FZ_JSON, NULL, NULL, NULL },
	{ "-kernel", FZ_PATH, NULL, NULL, NULL },
	{ "-initrd", FZ_PATH, NULL, NULL, NULL },
	{ "-bios", FZ_PATH, NULL, NULL, NULL },
	{ "-append", FZ_TEXT, NULL, NULL, NULL },
	{ NULL, FZ_FLAG, NULL, NULL, NULL },
};

static const struct fz_opt *fz_opt_find(const char *name)
{
	for (const struct fz_opt *o = fz_opts; o->name; o++)
		if (!strcmp(o->name, name))
			return o;
	return NULL;
}

static bool fz_in(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (!strcmp(*list, s))
			return true;
	return false;
}

/* ------------------------------------------------------------ what was seen */

/* Everything defined so far in one argv, for references and uniqueness. */
struct fz_seen {
	const struct sv_profile *p;
	const struct sv_facts *f;
	struct sv_strv devices, nodes, netdevs, chardevs, fdsets;
	struct sv_strv bootindex, chassis;
};

static void fz_seen_free(struct fz_seen *s)
{
	struct sv_strv *all[] = {
		&s->devices, &s->nodes, &s->netdevs, &s->chardevs, &s->fdsets,
		&s->bootindex, &s->chassis,
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		sv_strv_free(all[i]);
}

static bool fz_has(const struct sv_strv *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (!strcmp(v->v[i], s))
			return true;
	return false;
}

/* Add s to v; it must not be there yet. */
static void fz_define(struct sv_strv *v, const char *s, const char *what)
{
	FZ_REQUIRE(!fz_has(v, s), what, s);
	if (sv_strv_push(v, s) < 0)
		abort();
}

/* ------------------------------------------------------------ values */

/* One line of printable text (UTF-8 allowed), no control characters. */
static void fz_check_clean(const char *s)
{
	FZ_REQUIRE(s, "NULL argv element", s);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		FZ_REQUIRE(*c >= 0x20 && *c != 0x7f, "control character in argv element", s);
}

/* QEMU's id_wellformed(): [A-Za-z][A-Za-z0-9_.-]*; block node names stay
 * under 32 characters. */
static void fz_check_id(const char *id, bool node)
{
	FZ_REQUIRE(id && ((*id >= 'a' && *id <= 'z') || (*id >= 'A' && *id <= 'Z')),
	           "id does not start with a letter", id);
	FZ_REQUIRE(strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                  "0123456789_.-") == strlen(id), "id holds a bad character", id);
	FZ_REQUIRE(!node || strlen(id) < 32, "node name of 32 characters or more", id);
}

/* An absolute path as sv_path_resolve() makes them: no empty, "." or ".."
 * component, no trailing slash. */
static void fz_check_path(const char *s)
{
	FZ_REQUIRE(s[0] == '/', "path is not absolute", s);
	if (!strcmp(s, "/"))
		return;
	for (const char *c = s; *c; ) {
		size_t n = strcspn(++c, "/");

		FZ_REQUIRE(n && !(n == 1 && c[0] == '.') &&
		           !(n == 2 && c[0] == '.' && c[1] == '.'),
		           "path is not canonical", s);
		c += n;
	}
}

/* path is want, or a file descriptor QEMU is given instead ("/dev/fdset/N"
 * of an -add-fd seen before, "/proc/self/fd/N"). */
static void fz_check_file(const struct fz_seen *s, const char *path, const char *want)
{
	fz_check_path(path);
	if (want && !strcmp(path, want))
		return;
	if (!strncmp(path, "/dev/fdset/", 11))
		FZ_REQUIRE(fz_has(&s->fdsets, path + 11), "fd set never added", path);
	else
		FZ_REQUIRE(!strncmp(path, "/proc/self/fd/", 14) && path[14] &&
		           strspn(path + 14, "0123456789") == strlen(path + 14),
		           "file name is not the profile's", path);
}

/* ------------------------------------------------------------ QemuOpts */

/* A value up to an unescaped comma (QEMU's get_opt_value): ",," is a
 * literal comma. Returns where it stopped, *out malloc'd. */
static const char *fz_opt_value(const char *p, char **out)
{
	char *v = malloc(strlen(p) + 1), *o = v;

	if (!v)
		abort();
	for (; *p; p++) {
		if (*p == ',' && p[1] != ',')
			break;
		*o++ = *p;
		p += *p == ',';
	}
	*o = '\0';
	*out = v;
	return p;
}

/* QEMU's option keys: [a-z0-9-_.]+. */
static bool fz_key_ok(const char *k)
{
	return *k && strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == strlen(k);
}

/* Split s as QemuOpts does into key, value pairs in kv, checking each key
 * against o: allowed, given once, with a non-empty value. */
static void fz_opts_split(const struct fz_opt *o, const char *s, struct sv_strv *kv)
{
	FZ_REQUIRE(*s, "empty option list", o->name);
	for (const char *p = s; *p; ) {
		size_t len = strcspn(p, "=,");
		char *key, *val;

		if (p[len] == '=') {
			key = strndup(p, len);
			p += len + 1;
		} else if (p == s && o->implied)
			key = strdup(o->implied);
		else
			fz_fail("an element without '=' (QEMU takes it as a flag)", s);
		if (!key)
			abort();
		FZ_REQUIRE(fz_key_ok(key), "bad key in option list", s);
		FZ_REQUIRE((o->implied && !strcmp(key, o->implied)) || fz_in(o->keys, key),
		           "key not allowed for this option", s);
		for (size_t i = 0; i < kv->n; i += 2)
			FZ_REQUIRE(strcmp(kv->v[i], key), "key given twice", s);
		p = fz_opt_value(p, &val);
		FZ_REQUIRE(*val, "empty value in option list", s);
		FZ_REQUIRE(!(o->implied && !strcmp(key, o->implied) && o->firsts) ||
		           fz_in(o->firsts, val), "value not allowed", s);
		if (sv_strv_push_take(kv, key) < 0 || sv_strv_push_take(kv, val) < 0)
			abort();
		if (*p)
			FZ_REQUIRE(*++p, "trailing comma in option list", s);
	}
}

static const char *fz_kv_get(const struct sv_strv *kv, const char *key)
{
	for (size_t i = 0; i + 1 < kv->n; i += 2)
		if (!strcmp(kv->v[i], key))
			return kv->v[i + 1];
	return NULL;
}

/* kv has key with value want (want NULL: key absent). */
static void fz_kv_is(const struct sv_strv *kv, const char *key, const char *want,
                     const char *s)
{
	const char *v = fz_kv_get(kv, key);

	FZ_REQUIRE(want ? v && !strcmp(v, want) : !v, "option value is not the "
	           "profile's (truncated, split or lost)", s);
}

static void fz_kv_isu(const struct sv_strv *kv, const char *key, unsigned long long u,
                      const char *suffix, const char *s)
{
	char want[32];

	snprintf(want, sizeof(want), "%llu%s", u, suffix);
	fz_kv_is(kv, key, want, s);
}

/* ------------------------------------------------------------ option checks */

static void fz_chardev(struct fz_seen *s, const struct sv_strv *kv, const char *str)
{
	const char *id = fz_kv_get(kv, "id"), *log = fz_kv_get(kv, "logfile");
	bool qmp = id && !strcmp(id, "qmp"), serial = id && !strcmp(id, "serial0");
	int fd = qmp ? s->f->qmp_fd : s->f->serial_fd;
	char fdtext[16];

	FZ_REQUIRE(qmp || serial, "unexpected chardev", str);
	fz_define(&s->chardevs, id, "chardev id used twice");
	snprintf(fdtext, sizeof(fdtext), "%d", fd);
	fz_kv_is(kv, "fd", fd >= 0 ? fdtext : NULL, str);
	fz_kv_is(kv, "path", fd >= 0 ? NULL : qmp ? s->f->qmp_path : s->f->serial_path, str);
	fz_kv_is(kv, "server", "on", str);
	fz_kv_is(kv, "wait", "off", str);
	if (qmp || !s->p->serial_log) {
		fz_kv_is(kv, "logfile", NULL, str);
		fz_kv_is(kv, "logappend", NULL, str);
		return;
	}
	FZ_REQUIRE(log, "serial chardev without the profile's log", str);
	fz_check_file(s, log, s->p->serial_log);
	fz_kv_is(kv, "logappend", "on", str);
}

static void fz_vnc(struct fz_seen *s, const struct sv_strv *kv, const char *str)
{
	const struct sv_profile *p = s->p;
	char *want = NULL;

	if (asprintf(&want, strchr(p->vnc_listen, ':') ? "[%s]:%u" : "%s:%u",
	             p->vnc_listen, p->vnc_display) < 0)
		abort();
	fz_kv_is(kv, "vnc", want, str);
	free(want);
}

static void fz_add_fd(struct fz_seen *s, const struct sv_strv *kv, const char *str)
{
	const char *fd = fz_kv_get(kv, "fd"), *set = fz_kv_get(kv, "set");

	FZ_REQUIRE(fd && strspn(fd, "0123456789") == strlen(fd), "-add-fd without fd=N", str);
	FZ_REQUIRE(set && strspn(set, "0123456789") == strlen(set), "-add-fd without set=N",
	           str);
	if (!fz_has(&s->fdsets, set) && sv_strv_push(&s->fdsets, set) < 0)
		abort();
}

static void fz_memory(const struct sv_profile *p, const struct sv_strv *kv, const char *str)
{
	fz_kv_isu(kv, "size", (unsigned long long)(p->memory >> 20), "M", str);
	if (!p->max_memory) {
		fz_kv_is(kv, "maxmem", NULL, str);
		return;
	}
	fz_kv_isu(kv, "maxmem", (unsigned long long)(p->max_memory >> 20), "M", str);
	fz_kv_isu(kv, "slots", p->slots, "", str);
}

static void fz_smp(const struct sv_profile *p, const struct sv_strv *kv, const char *str)
{
	fz_kv_isu(kv, "cpus", p->cpus, "", str);
	if (p->max_cpus > p->cpus)
		fz_kv_isu(kv, "maxcpus", p->max_cpus, "", str);
	else
		fz_kv_is(kv, "maxcpus", NULL, str);
}

/* The values of an option list that come from the profile or the facts. */
static void fz_opts_check(struct fz_seen *s, const char *opt, const struct sv_strv *kv,
                          const char *str)
{
	const struct sv_profile *p = s->p;

	if (!strcmp(opt, "-name"))
		fz_kv_is(kv, "guest", p->name, str);
	else if (!strcmp(opt, "-machine"))
		fz_kv_is(kv, "type", p->machine, str);
	else if (!strcmp(opt, "-cpu"))
		fz_kv_is(kv, "model", p->cpu_model, str);
	else if (!strcmp(opt, "-m"))
		fz_memory(p, kv, str);
	else if (!strcmp(opt, "-smp"))
		fz_smp(p, kv, str);
	else if (!strcmp(opt, "-chardev"))
		fz_chardev(s, kv, str);
	else if (!strcmp(opt, "-mon"))
		FZ_REQUIRE(fz_kv_get(kv, "chardev") && fz_has(&s->chardevs,
		           fz_kv_get(kv, "chardev")), "-mon on an unknown chardev", str);
	else if (!strcmp(opt, "-vnc"))
		fz_vnc(s, kv, str);
	else if (!strcmp(opt, "-add-fd"))
		fz_add_fd(s, kv, str);
}

static void fz_check_opts(struct fz_seen *s, const struct fz_opt *o, const char *str)
{
	struct sv_strv kv = { 0 };

	fz_opts_split(o, str, &kv);
	fz_opts_check(s, o->name, &kv, str);
	sv_strv_free(&kv);
}

/* ------------------------------------------------------------ JSON */

static const char *fz_jstr(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* A unique integer property (bootindex, chassis) when present. */
static void fz_unique_int(json_t *dev, const char *key, struct sv_strv *seen,
                          const char *str)
{
	json_t *v = json_object_get(dev, key);
	char text[32];

	if (!v)
		return;
	FZ_REQUIRE(json_is_integer(v), "property is not an integer", str);
	snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
	fz_define(seen, text, "value used by two devices");
}

/* A bus is one QEMU makes (pcie.0, the q35 AHCI's ide.N), a device defined
 * before, or such a device's bus N (usb.0.0, scsi.0.0, sata.0.3). */
static void fz_check_bus(const struct fz_seen *s, const char *bus, const char *str)
{
	const char *dot = strrchr(bus, '.');
	char *base;
	bool ok;

	if (!strcmp(bus, "pcie.0") || !strcmp(bus, "pci.0") ||
	    (!strncmp(bus, "ide.", 4) && bus[4] >= '0' && bus[4] <= '5' && !bus[5]))
		return;
	if (fz_has(&s->devices, bus))
		return;
	FZ_REQUIRE(dot && dot[1] && strspn(dot + 1, "0123456789") == strlen(dot + 1),
	           "bus is no device defined before", str);
	base = strndup(bus, (size_t)(dot - bus));
	ok = base && fz_has(&s->devices, base);
	free(base);
	FZ_REQUIRE(ok, "bus is no device defined before", str);
}

/* A reference to something defined before, when present. */
static void fz_ref(json_t *obj, const char *key, const struct sv_strv *defined,
                   const char *str)
{
	json_t *v = json_object_get(obj, key);

	if (v)
		FZ_REQUIRE(json_is_string(v) && fz_has(defined, json_string_value(v)),
		           "reference to something not defined before", str);
}

static void fz_device(struct fz_seen *s, json_t *dev, const char *str)
{
	const char *id = fz_jstr(dev, "id"), *bus = fz_jstr(dev, "bus");

	FZ_REQUIRE(fz_jstr(dev, "driver") && *fz_jstr(dev, "driver"), "device without driver",
	           str);
	fz_check_id(id, false);
	fz_define(&s->devices, id, "device id used twice");
	if (json_object_get(dev, "bus"))
		FZ_REQUIRE(bus, "bus is not a string", str);
	if (bus)
		fz_check_bus(s, bus, str);
	fz_ref(dev, "drive", &s->nodes, str);
	fz_ref(dev, "netdev", &s->netdevs, str);
	fz_ref(dev, "chardev", &s->chardevs, str);
	fz_unique_int(dev, "bootindex", &s->bootindex, str);
	fz_unique_int(dev, "chassis", &s->chassis, str);
}

/* A protocol node's file name is a drive's or the UEFI firmware's. */
static const char *fz_profile_file(const struct sv_profile *p, const char *name)
{
	for (size_t i = 0; i < p->ndrives; i++)
		if (p->drives[i].file && !strcmp(p->drives[i].file, name))
			return name;
	if ((p->uefi_code && !strcmp(p->uefi_code, name)) ||
	    (p->uefi_vars && !strcmp(p->uefi_vars, name)))
		return name;
	return NULL;
}

static void fz_blockdev(struct fz_seen *s, json_t *node, const char *str)
{
	const char *name = fz_jstr(node, "node-name"), *drv = fz_jstr(node, "driver");
	const char *file = fz_jstr(node, "filename");

	FZ_REQUIRE(drv && *drv, "blockdev without driver", str);
	fz_check_id(name, true);
	fz_define(&s->nodes, name, "node name used twice");
	if (json_is_string(json_object_get(node, "file")))
		fz_ref(node, "file", &s->nodes, str);
	if (!strcmp(drv, "file") || !strcmp(drv, "host_device") || !strcmp(drv, "host_cdrom")) {
		FZ_REQUIRE(file, "protocol node without filename", str);
		fz_check_file(s, file, fz_profile_file(s->p, file));
	}
}

static void fz_netdev(struct fz_seen *s, json_t *net, const char *str)
{
	const char *id = fz_jstr(net, "id");
	json_t *fwds = json_object_get(net, "hostfwd"), *fwd;
	size_t i;

	FZ_REQUIRE(fz_jstr(net, "type"), "netdev without type", str);
	if (fz_jstr(net, "helper"))
		fz_check_path(fz_jstr(net, "helper"));
	fz_check_id(id, false);
	fz_define(&s->netdevs, id, "netdev id used twice");
	if (!fwds)
		return;
	FZ_REQUIRE(json_is_array(fwds), "hostfwd is not an array", str);
	json_array_foreach(fwds, i, fwd)
		FZ_REQUIRE(json_object_size(fwd) == 1 && fz_jstr(fwd, "str"),
		           "hostfwd rule is not {\"str\": RULE}", str);
}

static void fz_check_json(struct fz_seen *s, const char *opt, const char *str)
{
	json_error_t e;
	json_t *obj = json_loads(str, JSON_REJECT_DUPLICATES, &e);

	FZ_REQUIRE(str[0] == '{' && json_is_object(obj),
	           "not one JSON object without duplicate keys", str);
	if (!strcmp(opt, "-device"))
		fz_device(s, obj, str);
	else if (!strcmp(opt, "-blockdev"))
		fz_blockdev(s, obj, str);
	else
		fz_netdev(s, obj, str);
	json_decref(obj);
}

/* ------------------------------------------------------------ the argv */

/* The profile's file for -kernel, -initrd or -bios. */
static const char *fz_path_want(const struct sv_profile *p, const char *opt)
{
	if (!strcmp(opt, "-kernel"))
		return p->kernel;
	if (!strcmp(opt, "-initrd"))
		return p->initrd;
	return p->bios;
}

static void fz_check_value(struct fz_seen *s, const struct fz_opt *o, const char *v)
{
	switch (o->kind) {
	case FZ_OPTS:
		fz_check_opts(s, o, v);
		break;
	case FZ_JSON:
		fz_check_json(s, o->name, v);
		break;
	case FZ_PATH:
		fz_check_file(s, v, fz_path_want(s->p, o->name));
		break;
	case FZ_TEXT:
		FZ_REQUIRE(s->p->append && !strcmp(v, s->p->append), "-append is not the "
		           "profile's", v);
		break;
	case FZ_FLAG:
		break;
	}
}

/* argv[1..end): options argv.c emits, each with its value. */
static void fz_check_builder(struct fz_seen *s, char **argv, size_t end)
{
	for (size_t i = 1; i < end; i++) {
		const struct fz_opt *o = fz_opt_find(argv[i]);

		FZ_REQUIRE(o, "not an option argv.c emits (a value split off, or a new "
		           "option the harness should learn)", argv[i]);
		if (o->kind == FZ_FLAG)
			continue;
		FZ_REQUIRE(i + 1 < end, "option without its value", argv[i]);
		fz_check_value(s, o, argv[++i]);
	}
}

static void fz_check_argv(const struct sv_profile *p, const struct sv_facts *f,
                          const struct sv_argv *a)
{
	struct fz_seen s = { .p = p, .f = f };
	size_t tail = p->extra_args.n + (f->incoming ? 2 : 0), end;

	FZ_REQUIRE(a->argv && a->argc > tail && !a->argv[a->argc], "argv is not "
	           "NULL-terminated at argc", NULL);
	for (size_t i = 0; i < a->argc; i++)
		fz_check_clean(a->argv[i]);
	for (size_t i = 0; i < a->warnings.n; i++)
		fz_check_clean(a->warnings.v[i]);
	FZ_REQUIRE(!strcmp(a->argv[0], p->binary), "argv[0] is not the binary", a->argv[0]);
	fz_check_path(a->argv[0]);
	end = a->argc - tail;
	fz_check_builder(&s, a->argv, end);
	for (size_t i = 0; i < p->extra_args.n; i++)
		FZ_REQUIRE(!strcmp(a->argv[end + i], p->extra_args.v[i]),
		           "extra-arg changed", a->argv[end + i]);
	if (f->incoming)
		FZ_REQUIRE(!strcmp(a->argv[a->argc - 2], "-incoming") &&
		           !strcmp(a->argv[a->argc - 1], "defer"), "no -incoming defer last",
		           a->argv[a->argc - 1]);
	FZ_REQUIRE(s.chardevs.n == 2, "QMP or serial chardev missing", a->argv[0]);
	fz_seen_free(&s);
}

/* Build with facts f: success, or -ENODEV when KVM is needed but unusable. */
static void fz_build(const struct sv_profile *p, const struct sv_facts *f)
{
	struct sv_error err = { 0 };
	struct sv_argv a;
	int r = sv_argv_build(p, f, &a, &err);

	if (r < 0) {
		FZ_REQUIRE(r == -ENODEV && !f->kvm_usable, "unexpected builder error", err.msg);
		FZ_REQUIRE(err.msg[0] && !a.argv && !a.argc && !a.warnings.n,
		           "builder error without message, or with output", err.msg);
		return;
	}
	fz_check_argv(p, f, &a);
	sv_argv_free(&a);
}

static void fz_build_all(const struct sv_profile *p)
{
	struct sv_facts f;

	FZ_REQUIRE(sv_facts_init(&f, FZ_RUN_DIR, p->name) == 0, "sv_facts_init", p->name);
	fz_build(p, &f);                /* socket paths QEMU listens on */
	f.qmp_fd = FZ_QMP_FD;           /* as qsupd runs it */
	f.serial_fd = FZ_SERIAL_FD;
	fz_build(p, &f);
	f.kvm_usable = false;
	f.incoming = true;
	fz_build(p, &f);
}

/* Errors: at least one, each one line that names the file. */
static void fz_check_errors(int r, const struct sv_strv *errs, bool has_nul)
{
	FZ_REQUIRE(r == 0 || r == -EINVAL, "unexpected parse result", NULL);
	FZ_REQUIRE(!has_nul || r != 0, "a profile holding a NUL byte was accepted", NULL);
	FZ_REQUIRE((r == 0) == (errs->n == 0), "errors and result disagree", NULL);
	for (size_t i = 0; i < errs->n; i++) {
		FZ_REQUIRE(!strncmp(errs->v[i], FZ_PROFILE ":", strlen(FZ_PROFILE) + 1),
		           "message does not start with the path", errs->v[i]);
		FZ_REQUIRE(!strchr(errs->v[i], '\n'), "message of several lines", errs->v[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sv_strv errs = { 0 };
	struct sv_profile *p = NULL;
	int r;

	if (size > SV_PROFILE_MAX_BYTES)
		return 0;
	r = sv_profile_parse(FZ_PROFILE, (const char *)data, size, &p, &errs);
	fz_check_errors(r, &errs, memchr(data, '\0', size) != NULL);
	if (r == 0)
		fz_build_all(p);
	sv_profile_free(p);
	sv_strv_free(&errs);
	return 0;
}
