/* QEMU's identity: see identity.h. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "identity.h"

void sv_id_config_init(struct sv_id_config *cfg, uid_t me, uid_t first, uint32_t count)
{
	char buf[4096];
	struct group gr, *res = NULL;

	memset(cfg, 0, sizeof(*cfg));
	cfg->root = me == 0;
	cfg->first = count ? first : SV_UID_FIRST;
	cfg->count = count ? count : SV_UID_COUNT;
	if (getgrnam_r("kvm", &gr, buf, sizeof(buf), &res) == 0 && res) {
		cfg->kvm_gid = res->gr_gid;
		cfg->have_kvm = true;
	}
}

uid_t sv_identity_hash_uid(const char *name, uid_t first, uint32_t count)
{
	char key[128];
	int n = snprintf(key, sizeof(key), "qsup-guest:%s", name);
	uint64_t h = sv_digest(key, n > 0 ? (size_t)n : 0);
	return first + (uid_t)(h % count);
}

uid_t sv_identity_next_uid(uid_t uid, uid_t first, uint32_t count)
{
	return uid - first + 1 >= count ? first : uid + 1;
}

int sv_identity_range_parse(const char *s, uid_t *first, uint32_t *count)
{
	uint64_t a, b;
	const char *dash = s ? strchr(s, '-') : NULL;
	char left[32];

	if (!dash || (size_t)(dash - s) >= sizeof(left))
		return -EINVAL;
	snprintf(left, sizeof(left), "%.*s", (int)(dash - s), s);
	if (sv_uint_parse(left, 1, 0x7ffffffe, &a) < 0 ||
	    sv_uint_parse(dash + 1, 1, 0x7ffffffe, &b) < 0 || b < a)
		return -EINVAL;
	*first = (uid_t)a;
	*count = (uint32_t)(b - a + 1);
	return 0;
}

/* A user name or numeric uid; *gid gets the account's group when known. */
static int lookup_user(const char *s, uid_t *uid, gid_t *gid, bool *known_gid,
                       struct sv_error *err)
{
	char buf[4096];
	struct passwd pw, *res = NULL;
	uint64_t n;

	*known_gid = false;
	if (sv_uint_parse(s, 0, 0x7ffffffe, &n) == 0) {
		*uid = (uid_t)n;
		return 0;
	}
	int r = getpwnam_r(s, &pw, buf, sizeof(buf), &res);
	if (r != 0 || !res)
		return sv_error_set(err, -ENOENT, "[qemu] user: no user called %s%s%s", s,
		                    r ? ": " : "", r ? strerror(r) : "");
	*uid = res->pw_uid;
	*gid = res->pw_gid;
	*known_gid = true;
	return 0;
}

static int lookup_group(const char *s, gid_t *gid, struct sv_error *err)
{
	char buf[4096];
	struct group gr, *res = NULL;
	uint64_t n;

	if (sv_uint_parse(s, 0, 0x7ffffffe, &n) == 0) {
		*gid = (gid_t)n;
		return 0;
	}
	int r = getgrnam_r(s, &gr, buf, sizeof(buf), &res);
	if (r != 0 || !res)
		return sv_error_set(err, -ENOENT, "[qemu] group: no group called %s%s%s", s,
		                    r ? ": " : "", r ? strerror(r) : "");
	*gid = res->gr_gid;
	return 0;
}

int sv_identity_resolve(const struct sv_profile *p, const char *name,
                        const struct sv_id_config *cfg, struct sv_identity *out,
                        struct sv_error *err)
{
	gid_t ugid = 0;
	bool known;
	int r;

	memset(out, 0, sizeof(*out));
	if (!cfg->root) {
		out->uid = geteuid();
		out->gid = getegid();
		if (p->user && (lookup_user(p->user, &out->uid, &ugid, &known, err) < 0 ||
		                out->uid != geteuid()))
			return sv_error_set(err, -EPERM, "[qemu] user = %s needs qsupd to run as "
			                    "root (this one runs as uid %u)", p->user,
			                    (unsigned)geteuid());
		if (p->group && (lookup_group(p->group, &out->gid, err) < 0 ||
		                 out->gid != getegid()))
			return sv_error_set(err, -EPERM, "[qemu] group = %s needs qsupd to run as "
			                    "root (this one runs as gid %u)", p->group,
			                    (unsigned)getegid());
		return 0;
	}
	if (p->user) {
		if ((r = lookup_user(p->user, &out->uid, &ugid, &known, err)) < 0)
			return r;
	} else {
		out->uid = sv_identity_hash_uid(name, cfg->first, cfg->count);
		out->dynamic = true;
	}
	out->gid = cfg->have_kvm ? cfg->kvm_gid : out->uid;
	if (p->group && (r = lookup_group(p->group, &out->gid, err)) < 0)
		return r;
	out->drop = out->uid != 0;
	if (!out->drop && !p->group)
		out->gid = 0;   /* user = root: QEMU keeps root's identity */
	return 0;
}

bool sv_identity_can_read(const struct sv_identity *id, uid_t owner, gid_t group,
                          mode_t mode)
{
	if (!id->drop)
		return true;   /* QEMU runs as qsupd's user, who opened it */
	if (id->uid == owner)
		return mode & S_IRUSR;
	if (id->gid == group)
		return mode & S_IRGRP;
	return mode & S_IROTH;
}
