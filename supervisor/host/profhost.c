/* qsupd --check's host checks: see profhost.h. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "profhost.h"

struct ph {
	const struct sv_profile *p;
	struct sv_strv *errs, *warns;
	size_t nerr;
};

static void say(struct ph *h, bool warn, const char *sect, const char *key, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));
static void say(struct ph *h, bool warn, const char *sect, const char *key, const char *fmt,
                ...)
{
	char what[1024];
	int line = sv_profile_line(h->p, sect, key);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (line > 0)
		sv_strv_pushf(warn ? h->warns : h->errs, "%s:%d: %s[%s] %s: %s", h->p->path, line,
		              warn ? "warning: " : "", sect, key, what);
	else
		sv_strv_pushf(warn ? h->warns : h->errs, "%s: %s[%s] %s: %s", h->p->path,
		              warn ? "warning: " : "", sect, key, what);
	h->nerr += !warn;
}

/* A file made at start (made says how; NULL: said nothing, as for a log)
 * that is not there yet: a warning, unless its directory cannot take it.
 * With mkdirs (a disk's image: prepare.c makes its missing directories),
 * the nearest directory that exists must take them. */
static void not_yet(struct ph *h, const char *sect, const char *key, const char *path,
                    const char *made, bool mkdirs)
{
	char dir[PATH_MAX], missing[PATH_MAX] = "";
	char *slash;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	while (mkdirs && stat(dir, &st) < 0 && errno == ENOENT && (slash = strrchr(dir, '/')) &&
	       slash != dir) {
		if (!missing[0])
			snprintf(missing, sizeof(missing), "%s", dir);
		*slash = '\0';
	}
	if (missing[0] && stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    access(dir, W_OK | X_OK) == 0) {
		say(h, true, sect, key, "%s does not exist yet: qsupd makes its directory %s and "
		    "%s at the first start", path, missing, made ? made : "makes it");
		return;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		say(h, false, sect, key, "%s does not exist, and neither does its directory %s: "
		    "qsupd makes the file at start, not the directory; make it (mkdir -p %s)",
		    path, dir, dir);
	else if (access(dir, W_OK | X_OK) < 0)
		say(h, false, sect, key, "%s does not exist, and qsupd's user (uid %u) cannot "
		    "create it in %s: %s", path, (unsigned)geteuid(), dir, strerror(errno));
	else if (made)
		say(h, true, sect, key, "%s does not exist yet: qsupd %s at the first start", path,
		    made);
}

/* path must be there (or, with made, is made at start), a regular file or
 * a block device that qsupd's user can open with acc (R_OK, W_OK). Returns
 * true when it is there and usable. */
static bool need_file(struct ph *h, const char *sect, const char *key, const char *path,
                      int acc, const char *made, bool mkdirs)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		int e = errno;

		if (e == ENOENT && made)
			not_yet(h, sect, key, path, made, mkdirs);
		else
			say(h, false, sect, key, "%s: %s; %s", path, strerror(e), e == ENOENT ?
			    "it must exist before the guest starts" : "qsupd cannot reach it");
		return false;
	}
	if (S_ISDIR(st.st_mode)) {
		say(h, false, sect, key, "%s is a directory; give a file", path);
		return false;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		say(h, false, sect, key, "%s is not a regular file or a block device", path);
		return false;
	}
	if (access(path, acc) < 0) {
		say(h, false, sect, key, "%s is not %s by qsupd's user (uid %u): %s; qsupd opens "
		    "it and hands QEMU the fd", path, acc & W_OK ? "readable and writable" :
		    "readable", (unsigned)geteuid(), strerror(errno));
		return false;
	}
	return true;
}

static void check_drives(struct ph *h)
{
	const struct sv_profile *p = h->p;

	for (size_t i = 0; i < p->ndrives; i++) {
		const struct sv_drive *d = &p->drives[i];
		char sect[64], made[128];
		struct sv_chain chain;
		struct sv_error err = { 0 };

		if (!d->file)
			continue;   /* an empty CD-ROM drive */
		snprintf(sect, sizeof(sect), "%s.%s", d->cdrom ? "cdrom" : "disk", d->id);
		bool gib = d->size % (1ull << 30) == 0;
		snprintf(made, sizeof(made), "creates it (%s, %llu%s, with qemu-img)", d->format,
		         (unsigned long long)(d->size >> (gib ? 30 : 20)), gib ? "G" : "M");
		if (!need_file(h, sect, "file", d->file, d->read_only ? R_OK : R_OK | W_OK,
		               d->size ? made : NULL, d->size > 0) || d->cdrom)
			continue;
		if (sv_image_chain(d->file, d->format, &chain, &err) < 0)
			say(h, false, sect, "file", "%s (format = %s)", err.msg, d->format);
		else
			sv_chain_free(&chain);
	}
}

static void check_guest(struct ph *h)
{
	const struct sv_profile *p = h->p;

	if (p->kernel)
		need_file(h, "guest", "kernel", p->kernel, R_OK, NULL, false);
	if (p->initrd)
		need_file(h, "guest", "initrd", p->initrd, R_OK, NULL, false);
	if (p->bios)
		need_file(h, "guest", "bios", p->bios, R_OK, NULL, false);
	if (p->firmware != SV_FIRMWARE_UEFI)
		return;
	if (p->uefi_code && !need_file(h, "guest", "uefi-code", p->uefi_code, R_OK, NULL, false) &&
	    access(p->uefi_code, F_OK) < 0)
		say(h, false, "guest", "uefi-code", "install the UEFI firmware (apt-get install "
		    "ovmf), or give its path");
	if (!p->uefi_vars || access(p->uefi_vars, F_OK) == 0) {
		if (p->uefi_vars)
			need_file(h, "guest", "uefi-vars", p->uefi_vars, R_OK | W_OK, NULL, false);
		return;
	}
	/* Missing vars are copied from the template at the first start. */
	if (p->uefi_vars_template &&
	    need_file(h, "guest", "uefi-vars-template", p->uefi_vars_template, R_OK, NULL, false))
		not_yet(h, "guest", "uefi-vars", p->uefi_vars, "copies it from "
		        "uefi-vars-template", false);
}

static void check_nics(struct ph *h)
{
	const struct sv_profile *p = h->p;

	for (size_t i = 0; i < p->nnics; i++) {
		const struct sv_nic *n = &p->nics[i];
		char sect[64], path[128];

		snprintf(sect, sizeof(sect), "nic.%s", n->id);
		switch (n->type) {
		case SV_NIC_BRIDGE:
			snprintf(path, sizeof(path), "/sys/class/net/%s", n->bridge);
			if (access(path, F_OK) < 0) {
				say(h, false, sect, "bridge", "there is no interface %s on this host; "
				    "make the bridge (ip link add %s type bridge) or use another",
				    n->bridge, n->bridge);
				break;
			}
			snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", n->bridge);
			if (access(path, F_OK) < 0)
				say(h, false, sect, "bridge", "%s is not a bridge", n->bridge);
			break;
		case SV_NIC_NETWORK:   /* its definition: main.c, check_profile_nets */
		case SV_NIC_TAP:       /* qsupd attaches it, or makes it */
		case SV_NIC_USER:
			break;
		}
	}
}

size_t sv_profhost_check(const struct sv_profile *p, struct sv_strv *errs,
                         struct sv_strv *warns)
{
	struct ph h = { .p = p, .errs = errs, .warns = warns };

	check_guest(&h);
	check_drives(&h);
	check_nics(&h);
	/* The serial log is made at start, quietly: only its directory must
	 * be there. */
	if (p->serial_log && access(p->serial_log, F_OK) < 0 && errno == ENOENT)
		not_yet(&h, "serial", "log", p->serial_log, NULL, false);
	else if (p->serial_log)
		need_file(&h, "serial", "log", p->serial_log, W_OK, NULL, false);
	return h.nerr;
}

/* ------------------------------------------------------------ clashes */

enum { CLAIM_TCP, CLAIM_UDP, CLAIM_MAC };

struct sv_profhost_claim {
	int kind;
	char addr[64];          /* ports: the host address */
	unsigned port;
	uint8_t mac[6];
	char owner[SV_NAME_MAX + 1];
	char where[PATH_MAX + 96];      /* "PATH:LINE: [sect] key" */
};

static bool wildcard(const char *a)
{
	return !a[0] || !strcmp(a, "0.0.0.0") || !strcmp(a, "::");
}

static bool clash(const struct sv_profhost_claim *a, const struct sv_profhost_claim *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == CLAIM_MAC)
		return !memcmp(a->mac, b->mac, 6);
	return a->port == b->port &&
	       (!strcmp(a->addr, b->addr) || wildcard(a->addr) || wildcard(b->addr));
}

static void what_of(const struct sv_profhost_claim *c, char *buf, size_t size)
{
	if (c->kind == CLAIM_MAC) {
		char m[18];

		sv_mac_format(c->mac, m);
		snprintf(buf, size, "MAC %s", m);
	} else {
		snprintf(buf, size, "%s port %s%s%s:%u", c->kind == CLAIM_UDP ? "udp" : "tcp",
		         strchr(c->addr, ':') ? "[" : "", c->addr, strchr(c->addr, ':') ? "]" : "",
		         c->port);
	}
}

/* Check c against the set (a clash: an error at c's place), add it. */
static size_t claim(struct sv_profhost_set *set, struct sv_profhost_claim *c,
                    const struct sv_profile *p, const char *sect, const char *key,
                    struct sv_strv *errs)
{
	char what[96];
	int line = sv_profile_line(p, sect, key);
	size_t bad = 0;

	snprintf(c->owner, sizeof(c->owner), "%s", p->name);
	snprintf(c->where, sizeof(c->where), "%s:%d: [%s] %s", p->path, line, sect, key);
	for (size_t i = 0; i < set->n; i++) {
		if (!clash(&set->v[i], c))
			continue;
		what_of(c, what, sizeof(what));
		sv_strv_pushf(errs, "%s: %s is also used by %s (%s); %s", c->where, what,
		              set->v[i].owner, set->v[i].where, c->kind == CLAIM_MAC ?
		              "give each NIC its own MAC" : "only one of them could run; "
		              "give each its own");
		bad++;
		break;
	}
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 16;
		struct sv_profhost_claim *v = realloc(set->v, cap * sizeof(*v));

		if (!v)
			return bad;
		set->v = v;
		set->cap = cap;
	}
	set->v[set->n++] = *c;
	return bad;
}

size_t sv_profhost_claim(struct sv_profhost_set *set, const struct sv_profile *p,
                         struct sv_strv *errs)
{
	struct sv_profhost_claim c;
	size_t bad = 0;
	char sect[64];

	if (p->vnc) {
		memset(&c, 0, sizeof(c));
		c.kind = CLAIM_TCP;
		snprintf(c.addr, sizeof(c.addr), "%s", p->vnc_listen ? p->vnc_listen : "");
		c.port = 5900 + p->vnc_display;
		bad += claim(set, &c, p, "display", "vnc-display", errs);
	}
	for (size_t i = 0; i < p->nnics; i++) {
		const struct sv_nic *n = &p->nics[i];

		snprintf(sect, sizeof(sect), "nic.%s", n->id);
		for (size_t j = 0; j < n->nforwards; j++) {
			memset(&c, 0, sizeof(c));
			c.kind = n->forwards[j].udp ? CLAIM_UDP : CLAIM_TCP;
			snprintf(c.addr, sizeof(c.addr), "%s", n->forwards[j].host_addr);
			c.port = n->forwards[j].host_port;
			bad += claim(set, &c, p, sect, "forward", errs);
		}
		memset(&c, 0, sizeof(c));
		c.kind = CLAIM_MAC;
		memcpy(c.mac, n->mac, 6);
		bad += claim(set, &c, p, sect, "mac", errs);
	}
	return bad;
}

void sv_profhost_set_free(struct sv_profhost_set *set)
{
	free(set->v);
	memset(set, 0, sizeof(*set));
}
