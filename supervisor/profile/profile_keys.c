/*
 * The profile schema: one table of keys per section, each key with its
 * parser, limits and the "what is allowed" text used in messages. This is
 * the source of truth that qsup.ini(5) documents; keep the two in step.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "profile_int.h"
#include "setkeys.h"

#define FIELD(c, s, k, type) ((type *)(void *)((char *)pc_sect_obj(c, s) + (k)->off))
#define G(f) offsetof(struct sv_profile, f)
#define D(f) offsetof(struct sv_drive, f)
#define N(f) offsetof(struct sv_nic, f)
#define MIB (1ull << 20)
#define SEC 1000ull

static void bad(struct pctx *c, struct psect *s, const struct pkey *k,
                const char *v, const char *what)
{
	pc_report(c, c->lineno, s->name, k->name, "\"%s\" %s; %s", v, what, k->help);
}

/* Store a malloc'd copy of v in a char * field. */
static void set_str(struct pctx *c, char **field, const char *v)
{
	free(*field);
	*field = strdup(v);
	if (!*field)
		c->oom = true;
}

/* [A-Za-z0-9] first, then [A-Za-z0-9] and extra, at most max characters. */
static bool word_ok(const char *v, const char *extra, size_t max)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	size_t n = strlen(v);

	if (n == 0 || n > max || !strchr(alnum, v[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!strchr(alnum, v[i]) && !strchr(extra, v[i]))
			return false;
	return true;
}

/* ------------------------------------------------------------ scalars */

static void k_bool(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	if (sv_bool_parse(v, FIELD(c, s, k, bool)) < 0)
		bad(c, s, k, v, "is not a yes/no value");
}

static int num(struct pctx *c, struct psect *s, const struct pkey *k, const char *v,
               uint64_t *out)
{
	int r = sv_uint_parse(v, k->min, k->max, out);

	if (r == -ERANGE)
		bad(c, s, k, v, "is out of range");
	else if (r < 0)
		bad(c, s, k, v, "is not a whole number");
	return r;
}

static void k_uint(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	uint64_t x;

	if (num(c, s, k, v, &x) == 0)
		*FIELD(c, s, k, unsigned) = (unsigned)x;
}

static void k_int(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	uint64_t x;

	if (num(c, s, k, v, &x) == 0)
		*FIELD(c, s, k, int) = (int)x;
}

static void k_size(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	uint64_t x;
	int r = sv_size_parse(v, &x);

	if (r == -EINVAL)
		bad(c, s, k, v, "is not a size");
	else if (r == 0 && x < k->min && v[strlen(v) - 1] >= '0' && v[strlen(v) - 1] <= '9')
		bad(c, s, k, v, "is too small (a number without a suffix is in bytes)");
	else if (r == 0 && x < k->min)
		bad(c, s, k, v, "is too small");
	else if (r < 0 || x > k->max)
		bad(c, s, k, v, "is too large");
	else if (k->min >= MIB && x % MIB)
		bad(c, s, k, v, "is not a multiple of 1M");
	else
		*FIELD(c, s, k, uint64_t) = x;
}

static void k_duration(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	uint64_t x;
	int r = sv_duration_parse(v, &x);

	if (r == -EINVAL)
		bad(c, s, k, v, "is not a duration");
	else if (r < 0 || x < k->min || x > k->max)
		bad(c, s, k, v, "is out of range");
	else
		*FIELD(c, s, k, uint64_t) = x;
}

static void k_enum(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	for (int i = 0; !k->choices[i] || *k->choices[i]; i++)
		if (k->choices[i] && !strcmp(k->choices[i], v)) {
			*FIELD(c, s, k, int) = i;
			return;
		}
	bad(c, s, k, v, "is not allowed");
}

/* A string chosen from k->choices, stored as a string. */
static void k_choice(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	for (int i = 0; *k->choices[i]; i++)
		if (!strcmp(k->choices[i], v)) {
			set_str(c, FIELD(c, s, k, char *), v);
			return;
		}
	bad(c, s, k, v, "is not allowed");
}

/* ------------------------------------------------------------ strings */

static void k_path(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	char *path = NULL;
	const char *why;
	int r = sv_path_resolve(c->p->dir, v, &path, &why);

	if (r == -ENOMEM) {
		c->oom = true;
	} else if (r < 0) {
		pc_report(c, c->lineno, s->name, k->name, "\"%s\" is refused: %s; %s",
		          v, why, k->help);
	} else {
		free(*FIELD(c, s, k, char *));
		*FIELD(c, s, k, char *) = path;
	}
}

/* A key qsup no longer uses: say what replaced it. */
static void k_gone(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	(void)v;
	pc_report(c, c->lineno, s->name, k->name, "%s", k->help);
}

/* A word: machine types, CPU models, serial numbers, interface names. The
 * characters allowed after the first are in k->choices[0]. */
static void k_word(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	if (!word_ok(v, k->choices[0], (size_t)k->max) ||
	    !strcmp(v, ".") || !strcmp(v, ".."))
		bad(c, s, k, v, "is not allowed");
	else
		set_str(c, FIELD(c, s, k, char *), v);
}

static void k_machine(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	struct sv_profile *p = c->p;

	if (!word_ok(v, "_.-", 64)) {
		bad(c, s, k, v, "is not allowed");
		return;
	}
	if (!strcmp(v, "q35") || !strncmp(v, "pc-q35-", 7))
		p->family = SV_MACHINE_Q35;
	else if (!strcmp(v, "pc") || !strncmp(v, "pc-i440fx-", 10))
		p->family = SV_MACHINE_PC;
	else {
		bad(c, s, k, v, "is not a supported machine type");
		return;
	}
	set_str(c, &p->machine, v);
}

/* Repeated append lines are joined with a space; the value grows by
 * doubling, so that many lines cost linear time. */
static void k_append(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	char **field = FIELD(c, s, k, char *);
	size_t n = strlen(v), need;

	if (!*field) {
		c->append_len = c->append_cap = 0;
		set_str(c, field, v);
		if (*field)
			c->append_len = c->append_cap = n;
		return;
	}
	need = c->append_len + 1 + n + 1;
	if (need > c->append_cap + 1) {
		size_t cap = (c->append_cap + 1) * 2;
		char *grown;

		while (cap < need)
			cap *= 2;
		if (!(grown = realloc(*field, cap))) {
			c->oom = true;
			return;
		}
		*field = grown;
		c->append_cap = cap - 1;
	}
	(*field)[c->append_len] = ' ';
	memcpy(*field + c->append_len + 1, v, n + 1);
	c->append_len += 1 + n;
}

static void k_extra(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	if (sv_strv_push(FIELD(c, s, k, struct sv_strv), v) < 0)
		c->oom = true;
}

static void k_user(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	if (!word_ok(v, "_.-", 32) && !(v[0] == '_' && word_ok(v + 1, "_.-", 31)))
		bad(c, s, k, v, "is not a user or group name");
	else
		set_str(c, FIELD(c, s, k, char *), v);
}

/* Split v at spaces and commas; call fn on each word; false stops. */
static void for_words(const char *v, bool (*fn)(void *arg, const char *w), void *arg)
{
	char w[128];

	while (*v) {
		size_t n = strcspn(v, " ,");

		if (n && n < sizeof(w)) {
			memcpy(w, v, n);
			w[n] = '\0';
			if (!fn(arg, w))
				return;
		} else if (n) {
			if (!fn(arg, ""))
				return;
		}
		v += n;
		v += strspn(v, " ,");
	}
}

struct words {
	struct pctx *c;
	struct psect *s;
	const struct pkey *k;
	struct sv_strv *out;
};

static bool word_in_list(struct words *w, const char *word, bool ok, const char *what)
{
	if (!ok) {
		bad(w->c, w->s, w->k, word, what);
		return false;
	}
	for (size_t i = 0; i < w->out->n; i++)
		if (!strcmp(w->out->v[i], word)) {
			bad(w->c, w->s, w->k, word, "is listed twice");
			return false;
		}
	if (sv_strv_push(w->out, word) < 0)
		w->c->oom = true;
	return true;
}

static bool boot_word(void *arg, const char *word)
{
	return word_in_list(arg, word, word_ok(word, "_-", SV_ID_MAX),
	                    "is not a device id");
}

static bool cap_word(void *arg, const char *word)
{
	struct words *w = arg;
	bool ok = false;

	for (int i = 0; *w->k->choices[i]; i++)
		ok |= !strcmp(w->k->choices[i], word);
	return word_in_list(w, word, ok, "is not a supported capability");
}

static void k_list(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	struct words w = { c, s, k, FIELD(c, s, k, struct sv_strv) };

	for_words(v, k->choices ? cap_word : boot_word, &w);
}

/* ------------------------------------------------------------ network */

static void k_mac(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	uint8_t *mac = FIELD(c, s, k, uint8_t);
	static const uint8_t zero[6];

	if (sv_mac_parse(v, mac) < 0)
		bad(c, s, k, v, "is not a MAC address");
	else if (mac[0] & 1)
		bad(c, s, k, v, "is a multicast address");
	else if (!memcmp(mac, zero, 6))
		bad(c, s, k, v, "is all zeros");
}

/* "[addr]" up to stop into out (IPv4 or empty); returns past it or NULL. */
static const char *fwd_addr(const char *p, char stop, char out[16])
{
	const char *e = strchr(p, stop);
	struct in_addr a;
	size_t n;

	if (!e || (n = (size_t)(e - p)) > 15)
		return NULL;
	memcpy(out, p, n);
	out[n] = '\0';
	if (n && inet_pton(AF_INET, out, &a) != 1)
		return NULL;
	return e + 1;
}

static const char *fwd_port(const char *p, char stop, uint16_t *port)
{
	const char *e = stop ? strchr(p, stop) : p + strlen(p);
	char buf[8];
	size_t n;
	uint64_t x;

	if (!e || (n = (size_t)(e - p)) == 0 || n >= sizeof(buf))
		return NULL;
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (sv_uint_parse(buf, 1, 65535, &x) < 0)
		return NULL;
	*port = (uint16_t)x;
	return p + n + (stop != 0);
}

static bool forward_parse(const char *v, struct sv_forward *f)
{
	const char *p = v;

	memset(f, 0, sizeof(*f));
	if (!strncmp(p, "tcp:", 4) || !strncmp(p, "udp:", 4))
		f->udp = p[0] == 'u';
	else
		return false;
	p = fwd_addr(p + 4, ':', f->host_addr);
	p = p ? fwd_port(p, '-', &f->host_port) : NULL;
	p = p ? fwd_addr(p, ':', f->guest_addr) : NULL;
	p = p ? fwd_port(p, 0, &f->guest_port) : NULL;
	if (!p)
		return false;
	if (!f->host_addr[0])
		strcpy(f->host_addr, "127.0.0.1");
	return true;
}

static void k_forward(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	struct sv_nic *n = pc_sect_obj(c, s);
	struct sv_forward f, *fs;

	if (!forward_parse(v, &f)) {
		bad(c, s, k, v, "is not a port forward");
		return;
	}
	fs = realloc(n->forwards, (n->nforwards + 1) * sizeof(*fs));
	if (!fs) {
		c->oom = true;
		return;
	}
	n->forwards = fs;
	fs[n->nforwards++] = f;
}

static void k_listen(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	unsigned char a[16];
	char buf[64];
	size_t n = strlen(v);

	if (n >= 2 && n < sizeof(buf) + 2 && v[0] == '[' && v[n - 1] == ']') {
		memcpy(buf, v + 1, n - 2);
		buf[n - 2] = '\0';
		if (inet_pton(AF_INET6, buf, a) == 1) {
			set_str(c, FIELD(c, s, k, char *), buf);
			return;
		}
	}
	if (inet_pton(AF_INET, v, a) == 1 || inet_pton(AF_INET6, v, a) == 1 ||
	    (word_ok(v, ".-", 253) && !strstr(v, ".."))) {
		set_str(c, FIELD(c, s, k, char *), v);
		return;
	}
	bad(c, s, k, v, "is not an address or host name");
}

/* vnc-display: a number, or "auto" (a free display at each start). */
static void k_vnc_display(struct pctx *c, struct psect *s, const struct pkey *k,
                          const char *v)
{
	c->p->vnc_display_auto = !strcmp(v, "auto");
	if (!c->p->vnc_display_auto)
		k_uint(c, s, k, v);
}

/* password = generate (qsupd makes one at each start). */
static void k_vnc_password(struct pctx *c, struct psect *s, const struct pkey *k,
                           const char *v)
{
	if (strcmp(v, "generate") != 0)
		bad(c, s, k, "(hidden)", "is not allowed (a password is never written in a "
		    "profile)");
	else
		*FIELD(c, s, k, bool) = true;
}

/* ------------------------------------------------------------ tuning */

/* An I/O limit (setkeys.h): its index is its place in sv_drive.iotune. */
static void k_iotune(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	int i = (int)((k->off - D(iotune)) / sizeof(uint64_t));
	char why[200];

	if (sv_iotune_parse(i, v, FIELD(c, s, k, uint64_t), why, sizeof(why)) < 0)
		pc_report(c, c->lineno, s->name, k->name, "%s", why);
}

/* A CPU list, stored in its canonical spelling. */
static void k_cpulist(struct pctx *c, struct psect *s, const struct pkey *k, const char *v)
{
	cpu_set_t set;
	char why[200], canon[256];

	if (sv_cpulist_parse(v, &set, why, sizeof(why)) < 0) {
		pc_report(c, c->lineno, s->name, k->name, "%s", why);
		return;
	}
	sv_cpulist_format(&set, canon, sizeof(canon));
	set_str(c, FIELD(c, s, k, char *), canon);
}

/* ------------------------------------------------------------ tables */

static const char *const accels[] = { "kvm", "tcg", "kvm:tcg", "" };
static const char *const firmwares[] = { "bios", "uefi", "" };
static const char *const mig_tls[] = { "none", "psk", "" };
static const char *const disk_buses[] = { "virtio", "scsi", "ide", "sata", "" };
static const char *const cd_buses[] = { NULL, "scsi", "ide", "sata", "" };
static const char *const caches[] = {
	"writeback", "none", "writethrough", "directsync", "unsafe", "" };
static const char *const aios[] = { "threads", "native", "io_uring", "" };
static const char *const formats[] = {
	"raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc", "qed", "" };
static const char *const nic_types[] = { "user", "bridge", "tap", "network", "" };
static const char *const models[] = { "virtio", "e1000e", "e1000", "rtl8139", "" };
static const char *const policies[] = { "never", "on-failure", "always", "" };
static const char *const spawns[] = { "auto", "allow", "deny", "" };
static const char *const passthroughs[] = { "full", "query", "off", "" };
static const char *const word_cpu[] = { "_.-" };
static const char *const word_serial[] = { "_.-" };
static const char *const word_ifname[] = { "_.-" };
static const char *const caps[] = {
	"auto-converge", "compress", "dirty-bitmaps", "events", "late-block-activate",
	"multifd", "pause-before-switchover", "postcopy-blocktime", "postcopy-preempt",
	"postcopy-ram", "release-ram", "return-path", "validate-uuid", "xbzrle",
	"zero-blocks", "zero-copy-send", "" };

#define IOT_BPS_HELP "use bytes per second from 4K to 1T, such as 10M, or 0 for no limit"
#define IOT_IOPS_HELP "use operations per second from 1 to 100000000, or 0 for no limit"
#define IOT_LEN_HELP "use seconds from 1 to 3600"
#define PATH_HELP "use an absolute path, or one relative to the profile's directory"

static const struct pkey guest_keys[] = {
	{ "memory", k_size, G(memory), 16 * MIB, 1ull << 44, NULL, 0,
	  "use a size such as 512M or 4G: a multiple of 1M from 16M to 16T" },
	{ "max-memory", k_size, G(max_memory), 16 * MIB, 1ull << 44, NULL, 0,
	  "use a size such as 8G: a multiple of 1M from 16M to 16T, above memory" },
	{ "slots", k_uint, G(slots), 1, 256, NULL, 0, "use a number from 1 to 256" },
	{ "cpus", k_uint, G(cpus), 1, 1024, NULL, 0, "use a number from 1 to 1024" },
	{ "max-cpus", k_uint, G(max_cpus), 1, 1024, NULL, 0,
	  "use a number from 1 to 1024, at least cpus" },
	{ "machine", k_machine, G(machine), 0, 0, NULL, 0,
	  "use q35, pc, pc-q35-VERSION or pc-i440fx-VERSION" },
	{ "accel", k_enum, G(accel), 0, 0, accels, 0, "use kvm, tcg or kvm:tcg" },
	{ "cpu-model", k_word, G(cpu_model), 0, 64, word_cpu, 0,
	  "use a QEMU CPU model name such as host, max or Skylake-Client" },
	{ "firmware", k_enum, G(firmware), 0, 0, firmwares, 0, "use bios or uefi" },
	{ "bios", k_path, G(bios), 0, 0, NULL, 0, PATH_HELP },
	{ "uefi-code", k_path, G(uefi_code), 0, 0, NULL, 0, PATH_HELP },
	{ "uefi-vars", k_path, G(uefi_vars), 0, 0, NULL, 0, PATH_HELP },
	{ "uefi-vars-template", k_path, G(uefi_vars_template), 0, 0, NULL, 0, PATH_HELP },
	{ "kernel", k_path, G(kernel), 0, 0, NULL, 0, PATH_HELP },
	{ "initrd", k_path, G(initrd), 0, 0, NULL, 0, PATH_HELP },
	{ "append", k_append, G(append), 0, 0, NULL, PK_REPEAT,
	  "use a kernel command line; repeated values are joined with a space" },
	{ "boot-order", k_list, G(boot_order), 0, 0, NULL, 0,
	  "use disk, CD-ROM and NIC ids, first to boot first, such as: cd root" },
	{ "hotplug-slots", k_uint, G(hotplug_slots), 0, 28, NULL, 0,
	  "use a number from 0 to 28" },
	{ "autostart", k_bool, G(autostart), 0, 0, NULL, 0, "use yes or no" },
	{ "agent", k_bool, G(agent), 0, 0, NULL, 0, "use yes or no" },
	{ "cpu-affinity", k_cpulist, G(cpu_affinity), 0, 0, NULL, 0,
	  "use a CPU list such as 0-3,6" },
	{ "emulator-affinity", k_cpulist, G(emulator_affinity), 0, 0, NULL, 0,
	  "use a CPU list such as 0-3,6" },
	{ "balloon", k_bool, G(balloon), 0, 0, NULL, 0, "use yes or no" },
	{ "balloon-free-page-reporting", k_bool, G(balloon_free_page_reporting), 0, 0, NULL,
	  0, "use yes or no" },
	{ NULL, NULL, 0, 0, 0, NULL, 0, NULL },
};

#define DRIVE_KEYS(buses, bushelp) \
	{ "file", k_path, D(file), 0, 0, NULL, 0, PATH_HELP }, \
	{ "format", k_choice, D(format), 0, 0, formats, 0, \
	  "use raw, qcow2, vmdk, vdi, vhdx, vpc or qed" }, \
	{ "bus", k_enum, D(bus), 0, 0, buses, 0, bushelp }, \
	{ "boot-index", k_int, D(boot_index), 0, 9999, NULL, 0, \
	  "use a number from 0 to 9999; lower boots first" }

static const struct pkey disk_keys[] = {
	DRIVE_KEYS(disk_buses, "use virtio, scsi, ide or sata"),
	{ "cache", k_enum, D(cache), 0, 0, caches, 0,
	  "use writeback, none, writethrough, directsync or unsafe" },
	{ "aio", k_enum, D(aio), 0, 0, aios, 0, "use threads, native or io_uring" },
	{ "read-only", k_bool, D(read_only), 0, 0, NULL, 0, "use yes or no" },
	{ "serial", k_word, D(serial), 0, 20, word_serial, 0,
	  "use 1-20 of A-Z a-z 0-9 _ . -, starting with a letter or digit" },
	{ "size", k_size, D(size), MIB, 1ull << 50, NULL, 0,
	  "use a size such as 20G: a multiple of 1M, at least 1M" },
	/* I/O limits: k_iotune says what is allowed (setkeys.c) */
	{ "bps-total", k_iotune, D(iotune[0]), 0, 0, NULL, 0, IOT_BPS_HELP },
	{ "bps-read", k_iotune, D(iotune[1]), 0, 0, NULL, 0, IOT_BPS_HELP },
	{ "bps-write", k_iotune, D(iotune[2]), 0, 0, NULL, 0, IOT_BPS_HELP },
	{ "iops-total", k_iotune, D(iotune[3]), 0, 0, NULL, 0, IOT_IOPS_HELP },
	{ "iops-read", k_iotune, D(iotune[4]), 0, 0, NULL, 0, IOT_IOPS_HELP },
	{ "iops-write", k_iotune, D(iotune[5]), 0, 0, NULL, 0, IOT_IOPS_HELP },
	{ "bps-total-max", k_iotune, D(iotune[6]), 0, 0, NULL, 0, IOT_BPS_HELP },
	{ "bps-read-max", k_iotune, D(iotune[7]), 0, 0, NULL, 0, IOT_BPS_HELP },
	{ "bps-write-max", k_iotune, D(iotune[8]), 0, 0, NULL, 0, IOT_BPS_HELP },
	{ "iops-total-max", k_iotune, D(iotune[9]), 0, 0, NULL, 0, IOT_IOPS_HELP },
	{ "iops-read-max", k_iotune, D(iotune[10]), 0, 0, NULL, 0, IOT_IOPS_HELP },
	{ "iops-write-max", k_iotune, D(iotune[11]), 0, 0, NULL, 0, IOT_IOPS_HELP },
	{ "bps-total-max-length", k_iotune, D(iotune[12]), 0, 0, NULL, 0, IOT_LEN_HELP },
	{ "bps-read-max-length", k_iotune, D(iotune[13]), 0, 0, NULL, 0, IOT_LEN_HELP },
	{ "bps-write-max-length", k_iotune, D(iotune[14]), 0, 0, NULL, 0, IOT_LEN_HELP },
	{ "iops-total-max-length", k_iotune, D(iotune[15]), 0, 0, NULL, 0, IOT_LEN_HELP },
	{ "iops-read-max-length", k_iotune, D(iotune[16]), 0, 0, NULL, 0, IOT_LEN_HELP },
	{ "iops-write-max-length", k_iotune, D(iotune[17]), 0, 0, NULL, 0, IOT_LEN_HELP },
	{ NULL, NULL, 0, 0, 0, NULL, 0, NULL },
};

static const struct pkey cdrom_keys[] = {
	DRIVE_KEYS(cd_buses, "use sata, ide or scsi"),
	{ NULL, NULL, 0, 0, 0, NULL, 0, NULL },
};

static const struct pkey nic_keys[] = {
	{ "type", k_enum, N(type), 0, 0, nic_types, 0, "use user, bridge, tap or network" },
	{ "model", k_enum, N(model), 0, 0, models, 0,
	  "use virtio, e1000e, e1000 or rtl8139" },
	{ "mac", k_mac, N(mac), 0, 0, NULL, 0,
	  "use six hex bytes such as 52:54:00:12:34:56 (unicast)" },
	{ "bridge", k_word, N(bridge), 0, 15, word_ifname, 0,
	  "use an interface name: 1-15 of A-Z a-z 0-9 _ . -" },
	{ "helper", k_gone, 0, 0, 0, NULL, 0,
	  "is no longer used: qsupd makes the tap on the bridge itself (QEMU runs "
	  "unprivileged and cannot run qemu-bridge-helper); remove the line" },
	{ "ifname", k_word, N(ifname), 0, 15, word_ifname, 0,
	  "use an interface name: 1-15 of A-Z a-z 0-9 _ . -" },
	{ "network", k_word, N(network), 0, SV_NAME_MAX, word_ifname, 0,
	  "use a network's name (its file in the networks dir without .ini): "
	  "1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit" },
	{ "forward", k_forward, 0, 0, 0, NULL, PK_REPEAT,
	  "use tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT with IPv4 "
	  "addresses, such as tcp::2222-:22" },
	{ "boot-index", k_int, N(boot_index), 0, 9999, NULL, 0,
	  "use a number from 0 to 9999; lower boots first" },
	{ NULL, NULL, 0, 0, 0, NULL, 0, NULL },
};

static const struct pkey serial_keys[] = {
	{ "log", k_path, G(serial_log), 0, 0, NULL, 0, PATH_HELP },
	{ NULL, NULL, 0, 0, 0, NULL, 0, NULL },
};

static const struct pkey display_keys[] = {
	{ "vnc", k_bool, G(vnc), 0, 0, NULL, 0, "use yes or no" },
	{ "vnc-listen", k_listen, G(vnc_listen), 0, 0, NULL, 0,
	  "use an IPv4 or IPv6 address or a host name, such as 127.0.0.1" },
	{ "vnc-display", k_vnc_display, G(vnc_display), 0, 99, NULL, 0,
	  "use a number from 0 to 99 (TCP port 5900 + N), or auto" },
	{ "password-file", k_path, G(vnc_password_file), 0, 0, NULL, 0, PATH_HELP },
	{ "password", k_vnc_password, G(vnc_password_generate), 0, 0, NULL, 0,
	  "use generate (qsupd makes one at each start; qsupctl display --password "
	  "prints it), or give password-file = PATH instead" },
	{ NULL, NULL, 0, 0, 0, NULL, 0, NULL },
};

static const struct pkey restart_keys[] = {
	{ "policy", k_enum, G(restart_policy), 0, 0, policies, 0,
	  "use never, on-failure or always" },
	{ "delay", k_duration, G(restart_delay_ms), 0, 3600 * SEC, NULL, 0,
	  "use a duration such as 500ms, 5s, 2m or 1h, at most 1h" },
	{ "max-delay", k_duration, G(restart_max_delay_ms), 0, 24 * 3600 * SEC, NULL, 0,
	  "use a duration such as 5m, at most 24h, and at least delay" },
	{ "burst", k_uint, G(restart_burst), 1, 1000, NULL, 0,
	  "use a number from 1 to 1000" },
	{ "interval", k_duration, G(restart_interval_ms), SEC, 7 * 24 * 3600 * SEC,
	  NULL, 0, "use a duration such as 300s or 1h, from 1s to 7 days" },
	{ "stable", k_duration, G(restart_stable_ms), 0, 7 * 24 * 3600 * SEC,
	  NULL, 0, "use a duration such as 60s or 10m, at most 7 days" },
	{ NULL, NULL, 0, 0, 0, NULL, 0, NULL },
};

static const struct pkey shutdown_keys[] = {
	{ "timeout", k_duration, G(shutdown_timeout_ms), SEC, 3600 * SEC, NULL, 0,
	  "use a duration such as 60s or 5m, from 1s to 1h" },
	{ NULL, NULL, 0, 0, 0, NULL, 0, NULL },
};

static const struct pkey migration_keys[] = {
	{ "capabilities", k_list, G(migrate_caps), 0, 0, caps, 0,
	  "use QEMU migration capabilities separated by spaces: auto-converge, "
	  "compress, dirty-bitmaps, events, late-block-activate, multifd, "
	  "pause-before-switchover, postcopy-blocktime, postcopy-preempt, "
	  "postcopy-ram, release-ram, return-path, validate-uuid, xbzrle, "
	  "zero-blocks, zero-copy-send" },
	{ "downtime", k_duration, G(migrate_downtime_ms), 1, 2000 * SEC, NULL, 0,
	  "use a duration such as 300ms, from 1ms to 2000s" },
	{ "bandwidth", k_size, G(migrate_bandwidth), 1, 1ull << 50, NULL, 0,
	  "use bytes per second with an optional K, M, G suffix, such as 100M" },
	{ "multifd-channels", k_uint, G(migrate_multifd_channels), 1, 255, NULL, 0,
	  "use a number from 1 to 255" },
	{ "tls", k_enum, G(migrate_tls), 0, 0, mig_tls, 0, "use none or psk" },
	{ NULL, NULL, 0, 0, 0, NULL, 0, NULL },
};

static const struct pkey qemu_keys[] = {
	{ "binary", k_path, G(binary), 0, 0, NULL, 0, PATH_HELP },
	{ "user", k_user, G(user), 0, 0, NULL, 0, "use a user name or a numeric uid" },
	{ "group", k_user, G(group), 0, 0, NULL, 0, "use a group name or a numeric gid" },
	{ "sandbox", k_bool, G(sandbox), 0, 0, NULL, 0, "use yes or no" },
	{ "sandbox-spawn", k_enum, G(sandbox_spawn), 0, 0, spawns, 0,
	  "use auto, allow or deny" },
	{ "start-timeout", k_duration, G(start_timeout_ms), SEC, 3600 * SEC, NULL, 0,
	  "use a duration such as 30s or 5m, from 1s to 1h" },
	{ "extra-arg", k_extra, G(extra_args), 0, 0, NULL, PK_REPEAT | PK_DASH,
	  "give one QEMU argument per extra-arg line" },
	{ "qmp-passthrough", k_enum, G(qmp_passthrough), 0, 0, passthroughs, 0,
	  "use full, query or off" },
	{ NULL, NULL, 0, 0, 0, NULL, 0, NULL },
};

const struct sect_def pc_sect_defs[] = {
	{ "guest", SECT_GUEST, false, guest_keys },
	{ "disk", SECT_DISK, true, disk_keys },
	{ "cdrom", SECT_CDROM, true, cdrom_keys },
	{ "nic", SECT_NIC, true, nic_keys },
	{ "serial", SECT_SERIAL, false, serial_keys },
	{ "display", SECT_DISPLAY, false, display_keys },
	{ "restart", SECT_RESTART, false, restart_keys },
	{ "shutdown", SECT_SHUTDOWN, false, shutdown_keys },
	{ "migration", SECT_MIGRATION, false, migration_keys },
	{ "qemu", SECT_QEMU, false, qemu_keys },
	{ NULL, 0, false, NULL },
};

/* ------------------------------------------------------------ defaults */

struct sv_profile *pc_profile_new(const char *path)
{
	struct sv_profile *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->memory = 512 * MIB;
	p->cpus = 1;
	p->family = SV_MACHINE_Q35;
	p->accel = SV_ACCEL_KVM;
	p->firmware = SV_FIRMWARE_BIOS;
	p->hotplug_slots = 4;
	p->restart_policy = SV_RESTART_ON_FAILURE;
	p->restart_delay_ms = 1 * SEC;
	p->restart_max_delay_ms = 60 * SEC;
	p->restart_burst = 5;
	p->restart_interval_ms = 300 * SEC;
	p->restart_stable_ms = 60 * SEC;
	p->shutdown_timeout_ms = 60 * SEC;
	p->start_timeout_ms = 30 * SEC;
	p->sandbox = true;
	p->sandbox_spawn = SV_SPAWN_AUTO;
	p->qmp_passthrough = SV_QMP_FULL;
	p->path = strdup(path);
	p->machine = strdup("q35");
	p->vnc_listen = strdup("127.0.0.1");
	p->binary = strdup("/usr/bin/qemu-system-x86_64");
	if (!p->path || !p->machine || !p->vnc_listen || !p->binary) {
		sv_profile_free(p);
		return NULL;
	}
	return p;
}

int pc_sect_init(struct pctx *c, struct psect *s)
{
	if (s->kind == SECT_NIC) {
		struct sv_nic *n = pc_sect_obj(c, s);

		n->id = strdup(s->id);
		n->line = s->line;
		n->type = SV_NIC_USER;
		n->model = SV_NIC_VIRTIO;
		n->boot_index = -1;
		return n->id ? 0 : -ENOMEM;
	}
	if (s->kind == SECT_DISK || s->kind == SECT_CDROM) {
		struct sv_drive *d = pc_sect_obj(c, s);

		d->id = strdup(s->id);
		d->line = s->line;
		d->cdrom = s->kind == SECT_CDROM;
		d->bus = d->cdrom ? SV_BUS_SATA : SV_BUS_VIRTIO;
		d->read_only = d->cdrom;
		d->boot_index = -1;
		return d->id ? 0 : -ENOMEM;
	}
	if (s->kind == SECT_GUEST)
		c->p->guest_line = s->line;
	return 0;
}

const char *sv_qmp_passthrough_name(enum sv_qmp_passthrough q)
{
	return passthroughs[q];
}

bool sv_format_valid(const char *fmt)
{
	for (size_t i = 0; formats[i][0]; i++)
		if (strcmp(formats[i], fmt) == 0)
			return true;
	return false;
}
