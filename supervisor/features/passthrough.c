/* The qmp verb's checks, logging and taint: see passthrough.h. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "request.h"
#include "guest.h"
#include "hotplug.h"
#include "log.h"
#include "passthrough.h"

#define DENIED "PermissionDenied"

/* ---- the decision (pure) ---- */

static void refuse(struct sv_pt_verdict *v, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void refuse(struct sv_pt_verdict *v, const char *cls, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->why, sizeof(v->why), fmt, ap);
	va_end(ap);
	v->allow = v->taints = false;
	v->cls = cls;
}

/* QMP command names are [A-Za-z0-9_-]; anything else is no command, and
 * must not reach the log either. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > SV_QMP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* The name compared with the tables: lower case, '_' as '-'. QEMU itself
 * matches exactly, so this only ever refuses more. */
static void normalize(const char *s, char *out, size_t size)
{
	size_t i;
	for (i = 0; s[i] && i + 1 < size; i++)
		out[i] = s[i] == '_' ? '-' : (char)tolower((unsigned char)s[i]);
	out[i] = '\0';
}

/* Commands qsupd keeps for itself, whatever their arguments. */
static const struct {
	const char *cmd, *why;
} reserved[] = {
	{ "quit", "use qsupctl stop or kill" },
	{ "system-powerdown", "use qsupctl stop" },
	{ "human-monitor-command", "HMP would bypass every check of the qmp verb; "
	  "use the QMP command itself" },
	{ "migrate", "use qsupctl migrate or save" },
	{ "migrate-incoming", "use qsupctl incoming or restore" },
	{ "migrate-start-postcopy", "use qsupctl migrate-postcopy" },
	{ "migrate-cancel", "use qsupctl migrate-cancel" },
	{ "migrate-recover", "qsupd runs migrations; use qsupctl migrate" },
	{ "migrate-pause", "qsupd runs migrations; use qsupctl migrate-cancel" },
	{ "migrate-continue", "qsupd runs migrations; use qsupctl migrate" },
	{ "migrate-set-capabilities", "qsupd sets them for each migration; use the "
	  "profile's [migration] capabilities or qsupctl migrate's" },
	{ "getfd", "qsupd passes QEMU the file descriptors it needs" },
	{ "closefd", "qsupd passes QEMU the file descriptors it needs" },
	{ "add-fd", "qsupd passes QEMU the file descriptors it needs" },
	{ "remove-fd", "qsupd passes QEMU the file descriptors it needs" },
	{ "set-action", "qsupd relies on QEMU's default actions on shutdown, reboot "
	  "and panic to tell how the guest ended" },
	{ "watchdog-set-action", "qsupd relies on QEMU's default actions to tell how "
	  "the guest ended" },
};

static const char *reserved_why(const char *norm)
{
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcmp(reserved[i].cmd, norm) == 0)
			return reserved[i].why;
	return NULL;
}

/* Names qsupd gives to fixed parts of every guest (argv.c). */
static const struct {
	const char *name, *what;
	enum sv_pt_owner owner;
} fixed[] = {
	{ "qmp", "qsupd's QMP chardev qmp", SV_PT_QSUPD },
	{ "serial0", "the console's chardev serial0", SV_PT_QSUPD },
	{ "serial.0", "the serial port serial.0", SV_PT_QSUPD },
	{ "pvpanic.0", "the panic device pvpanic.0", SV_PT_QSUPD },
	{ "video.0", "the display video.0", SV_PT_PROFILE },
	{ "usb.0", "the USB controller usb.0", SV_PT_PROFILE },
	{ "tablet.0", "the tablet tablet.0", SV_PT_PROFILE },
	{ "scsi.0", "the SCSI controller scsi.0", SV_PT_PROFILE },
	{ "sata.0", "the SATA controller sata.0", SV_PT_PROFILE },
	{ "fw.code", "the UEFI code node fw.code", SV_PT_PROFILE },
	{ "fw.vars", "the UEFI variables node fw.vars", SV_PT_PROFILE },
	{ "fw.code.file", "the UEFI code node fw.code.file", SV_PT_PROFILE },
	{ "fw.vars.file", "the UEFI variables node fw.vars.file", SV_PT_PROFILE },
};

/* "hotplug.N": a spare port. */
static bool spare_port(const char *name)
{
	const char *n = name + strlen("hotplug.");
	if (strncmp(name, "hotplug.", 8) != 0 || !*n)
		return false;
	return strspn(n, "0123456789") == strlen(n);
}

/* name is id, or PREFIX.id for one of qsupd's prefixes: which one. */
static const char *id_form(const char *name, const char *id)
{
	static const char *const prefixes[] = { "port", "file", "drive", "net" };
	size_t n = strlen(id), len = strlen(name);
	if (strcmp(name, id) == 0)
		return "";
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t p = strlen(prefixes[i]);
		if (len == p + 1 + n && !strncmp(name, prefixes[i], p) && name[p] == '.' &&
		    !strcmp(name + p + 1, id))
			return prefixes[i];
	}
	return NULL;
}

/* The profile device (drive or NIC) that name belongs to, in words. */
static bool profile_device(const struct sv_profile *p, const char *name, char *what,
                           size_t size)
{
	for (size_t i = 0; p && i < p->ndrives + p->nnics; i++) {
		bool drive = i < p->ndrives;
		const char *id = drive ? p->drives[i].id : p->nics[i - p->ndrives].id;
		const char *kind = !drive ? "NIC" : p->drives[i].cdrom ? "CD-ROM" : "disk";
		const char *form = id_form(name, id);
		if (!form)
			continue;
		if (!*form)
			snprintf(what, size, "%s %s", kind, id);
		else if (!strcmp(form, "port"))
			snprintf(what, size, "the root port %s of %s %s", name, kind, id);
		else if (!strcmp(form, "net"))
			snprintf(what, size, "the netdev %s of %s %s", name, kind, id);
		else
			snprintf(what, size, "the block node %s of %s %s", name, kind, id);
		return true;
	}
	return false;
}

enum sv_pt_owner sv_passthrough_owner(const struct sv_pt_facts *f, const char *name,
                                      char *what, size_t size)
{
	snprintf(what, size, "%s", name);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (strcmp(fixed[i].name, name) == 0) {
			snprintf(what, size, "%s", fixed[i].what);
			return fixed[i].owner;
		}
	}
	if (spare_port(name)) {
		snprintf(what, size, "the spare hot-plug port %s", name);
		return SV_PT_PROFILE;
	}
	if (profile_device(f->profile, name, what, size))
		return SV_PT_PROFILE;
	if (f->hotplugged && f->hotplugged(f->ctx, name))
		return SV_PT_HOTPLUG;
	return SV_PT_NOBODY;
}

/* Refuse cmd (as the client spelled it) when name is qsupd's; hint says
 * what to do instead, or NULL for the owner's usual advice. */
static bool refuse_owned(const struct sv_pt_facts *f, const char *prefix, const char *cmd,
                         const char *name, const char *hint, struct sv_pt_verdict *v)
{
	char what[160];
	enum sv_pt_owner o = name ? sv_passthrough_owner(f, name, what, sizeof(what))
	                   : SV_PT_NOBODY;
	static const char *const advice[] = {
		[SV_PT_PROFILE] = "it is a profile device; edit the profile",
		[SV_PT_QSUPD] = "qsupd relies on it",
		[SV_PT_HOTPLUG] = "it is hot-plugged; use qsupctl detach",
	};
	if (o == SV_PT_NOBODY)
		return false;
	refuse(v, DENIED, "%s%s of %s: %s", prefix, cmd, what, hint ? hint : advice[o]);
	return true;
}

/* device_del's id may be a QOM path, and any path other than
 * /machine/peripheral[-anon]/ID could reach a device through child or link
 * properties: the id named, or NULL for such a path. */
static const char *device_id(const char *s, char *buf, size_t size)
{
	const char *part[4];
	size_t len[4], n = 0;
	if (!strchr(s, '/'))
		return s;
	for (const char *p = s; *p;) {
		size_t l = strcspn(p, "/");
		if (l && n == 4)
			return NULL;
		if (l) {
			part[n] = p;
			len[n++] = l;
		}
		p += l + (p[l] == '/');
	}
	if (n == 1 && s[0] != '/') {
		snprintf(buf, size, "%.*s", (int)len[0], part[0]);
		return buf;
	}
	if (n != 3 || s[0] != '/' || len[0] != 7 || strncmp(part[0], "machine", 7) ||
	    !((len[1] == 10 && !strncmp(part[1], "peripheral", 10)) ||
	      (len[1] == 15 && !strncmp(part[1], "peripheral-anon", 15))))
		return NULL;
	snprintf(buf, size, "%.*s", (int)len[2], part[2]);
	return buf;
}

static const char *arg(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

/* Deleting something of qsupd's: the argument that names it. */
static const struct {
	const char *cmd, *key;
} deleters[] = {
	{ "device-del", "id" }, { "blockdev-del", "node-name" },
	{ "x-blockdev-del", "node-name" }, { "netdev-del", "id" }, { "object-del", "id" },
	{ "chardev-remove", "id" }, { "chardev-change", "id" },
};

/* Moving a disk of qsupd's onto another image (a snapshot overlay, a
 * mirror's target...): the arguments that name the disk. */
static const struct {
	const char *cmd, *keys[2];
} reroutes[] = {
	{ "blockdev-snapshot-sync", { "device", "node-name" } },
	{ "blockdev-snapshot", { "node", NULL } },
	{ "drive-mirror", { "device", NULL } },
	{ "blockdev-mirror", { "device", NULL } },
	{ "x-blockdev-change", { "parent", NULL } },
	{ "x-blockdev-reopen", { "node-name", NULL } },
};

#define REROUTE_HINT "qsupd opens the profile's or the attach's image again on a restart, " \
	"a migration or a re-add, so what was written elsewhere would be lost; copy " \
	"with blockdev-backup instead"

static bool check_delete(const struct sv_pt_facts *f, const char *prefix, const char *cmd,
                         const char *norm, json_t *args, struct sv_pt_verdict *v)
{
	char buf[256];
	for (size_t i = 0; i < sizeof(deleters) / sizeof(deleters[0]); i++) {
		if (strcmp(deleters[i].cmd, norm) != 0)
			continue;
		const char *name = arg(args, deleters[i].key);
		if (name && !strcmp(norm, "device-del") && !device_id(name, buf, sizeof(buf))) {
			refuse(v, DENIED, "%s%s of %.64s: name the device by its id (or "
			       "/machine/peripheral/ID)", prefix, cmd, name);
			return true;
		}
		if (name && !strcmp(norm, "device-del"))
			name = device_id(name, buf, sizeof(buf));
		return refuse_owned(f, prefix, cmd, name, NULL, v);
	}
	return false;
}

/* block-commit moves the device onto the base when it commits the active
 * layer (top-node left out); other commits keep it where it is. */
static bool check_commit(const struct sv_pt_facts *f, const char *prefix, const char *cmd,
                         json_t *args, struct sv_pt_verdict *v)
{
	const char *top = arg(args, "top-node");
	if (top)
		return refuse_owned(f, prefix, cmd, top, REROUTE_HINT, v);
	return refuse_owned(f, prefix, cmd, arg(args, "device"), REROUTE_HINT, v);
}

static bool check_reroute(const struct sv_pt_facts *f, const char *prefix, const char *cmd,
                          const char *norm, json_t *args, struct sv_pt_verdict *v)
{
	size_t i;
	json_t *e;
	if (!strcmp(norm, "block-commit"))
		return check_commit(f, prefix, cmd, args, v);
	if (!strcmp(norm, "blockdev-reopen")) {
		json_array_foreach(json_object_get(args, "options"), i, e)
			if (refuse_owned(f, prefix, cmd, arg(e, "node-name"), REROUTE_HINT, v))
				return true;
		return false;
	}
	for (i = 0; i < sizeof(reroutes) / sizeof(reroutes[0]); i++) {
		if (strcmp(reroutes[i].cmd, norm) != 0)
			continue;
		for (int k = 0; k < 2 && reroutes[i].keys[k]; k++)
			if (refuse_owned(f, prefix, cmd, arg(args, reroutes[i].keys[k]),
			                 REROUTE_HINT, v))
				return true;
	}
	return false;
}

/* What the arguments name: deleting or re-routing qsupd's things, a device
 * unrealized with qom-set, and the same inside a transaction. */
static bool check_targets(const struct sv_pt_facts *f, const char *prefix, const char *cmd,
                          json_t *args, struct sv_pt_verdict *v)
{
	char norm[SV_QMP_NAME_MAX + 1];
	size_t i;
	json_t *e;
	normalize(cmd, norm, sizeof(norm));
	if (check_delete(f, prefix, cmd, norm, args, v) ||
	    check_reroute(f, prefix, cmd, norm, args, v))
		return true;
	if (!strcmp(norm, "qom-set") && arg(args, "property") &&
	    !strcmp(arg(args, "property"), "realized")) {
		refuse(v, DENIED, "%s%s of realized: it adds or removes devices behind "
		       "qsupd's back; use device_add, device_del or qsupctl attach and detach",
		       prefix, cmd);
		return true;
	}
	if (strcmp(norm, "transaction") != 0 || *prefix)
		return false;
	json_array_foreach(json_object_get(args, "actions"), i, e) {
		const char *type = arg(e, "type");
		if (type && name_ok(type) &&
		    check_targets(f, "transaction: ", type, json_object_get(e, "data"), v))
			return true;
	}
	return false;
}

void sv_passthrough_decide(const char *command, json_t *args, const struct sv_pt_facts *f,
                           struct sv_pt_verdict *v)
{
	char norm[SV_QMP_NAME_MAX + 1];
	const char *why;
	memset(v, 0, sizeof(*v));
	if (!command || !name_ok(command)) {
		refuse(v, "InvalidArgument", "not a QMP command name");
		return;
	}
	bool query = strncmp(command, "query-", 6) == 0;
	if (f->policy == SV_QMP_OFF) {
		refuse(v, DENIED, "%s: %s's profile has qmp-passthrough = off",
		       command, f->guest);
		return;
	}
	if (f->policy == SV_QMP_QUERY && !query) {
		refuse(v, DENIED, "%s: %s's profile has qmp-passthrough = query "
		       "(query-* commands only)", command, f->guest);
		return;
	}
	normalize(command, norm, sizeof(norm));
	if ((why = reserved_why(norm))) {
		refuse(v, DENIED, "%s: %s", command, why);
		return;
	}
	if (f->busy && (!strcmp(norm, "stop") || !strcmp(norm, "cont"))) {
		refuse(v, "InvalidState", "%s: %s is %s, and qsupd runs stop and cont "
		       "itself until it is running (end a migration with qsupctl "
		       "migrate-cancel)", command, f->guest, f->busy);
		return;
	}
	if (check_targets(f, "", command, args, v))
		return;
	v->allow = true;
	v->taints = !query;
}

/* ---- taint ---- */

bool sv_taint_add(struct sv_taint *t, const char *command)
{
	bool was = t->tainted;
	t->tainted = true;
	for (unsigned i = 0; i < t->n; i++)
		if (strcmp(t->cmds[i], command) == 0)
			return !was;
	if (t->n == SV_TAINT_MAX)
		return !was;
	snprintf(t->cmds[t->n++], sizeof(t->cmds[0]), "%s", command);
	return true;
}

void sv_taint_clear(struct sv_taint *t)
{
	memset(t, 0, sizeof(*t));
}

static json_t *taint_list(const struct sv_taint *t)
{
	json_t *list = json_array();
	for (unsigned i = 0; list && i < t->n; i++)
		json_array_append_new(list, json_string(t->cmds[i]));
	return list;
}

/* g's taint record, made on first use (NULL when out of memory). */
static struct sv_taint *taint_of(struct sv_guest *g)
{
	if (!g->taint)
		g->taint = calloc(1, sizeof(*g->taint));
	return g->taint;
}

static void status(struct sv_guest *g, json_t *st)
{
	static const struct sv_taint none;
	const struct sv_taint *t = g->taint ? g->taint : &none;
	if (!st)
		return;
	json_object_set_new(st, "tainted", json_boolean(t->tainted));
	json_object_set_new(st, "taint", taint_list(t));
}

void sv_passthrough_save(struct sv_guest *g, json_t *js)
{
	if (js && g->taint && g->taint->tainted)
		json_object_set_new(js, "taint", taint_list(g->taint));
}

void sv_passthrough_restore(struct sv_guest *g, json_t *saved)
{
	json_t *list = json_object_get(saved, "taint"), *e;
	size_t i;
	if (g->taint)
		sv_taint_clear(g->taint);
	if (!json_is_array(list) || !taint_of(g))
		return;
	g->taint->tainted = true;
	json_array_foreach(list, i, e)
		if (json_is_string(e) && name_ok(json_string_value(e)))
			sv_taint_add(g->taint, json_string_value(e));
}

/* A new QEMU: no passthrough yet. */
static void qemu_new(struct sv_guest *g)
{
	if (g->taint)
		sv_taint_clear(g->taint);
}

static void release(struct sv_guest *g)
{
	free(g->taint);
	g->taint = NULL;
}

const struct sv_guest_observer sv_passthrough_observer = {
	.name = "passthrough", .qemu_new = qemu_new, .status = status, .release = release,
};

/* ---- the verb ---- */

static bool hotplugged(void *ctx, const char *name)
{
	return sv_hotplug_tracks(ctx, name);
}

static void facts_of(struct sv_guest *g, struct sv_pt_facts *f)
{
	const struct sv_profile *now = g->profile ? g->profile : g->run_profile;
	enum sv_state s = g->state;
	memset(f, 0, sizeof(*f));
	/* The policy as the profile says now: a reload tightens it at once. */
	f->policy = now ? now->qmp_passthrough : SV_QMP_FULL;
	f->guest = g->name;
	f->busy = sv_state_holds_runstate(s) ? sv_state_name(s) : NULL;
	/* What QEMU was started with is what it has. */
	f->profile = g->run_profile ? g->run_profile : g->profile;
	f->hotplugged = hotplugged;
	f->ctx = g;
}

void sv_passthrough_qmp(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	json_t *command = json_object_get(args, "command");
	json_t *qargs = json_object_get(args, "arguments");
	if (!json_is_string(command) || (qargs && !json_is_object(qargs))) {
		sv_reply_err(req, "InvalidArgument", "qmp needs {\"name\": string, \"command\": "
		             "string, \"arguments\": optional object}");
		return;
	}
	const char *cmd = json_string_value(command);
	unsigned uid = (unsigned)req->uid;
	struct sv_pt_facts f;
	struct sv_pt_verdict v;
	facts_of(g, &f);
	sv_passthrough_decide(cmd, qargs, &f, &v);
	if (!v.allow) {
		sv_log(SV_LOG_INFO, g->name, "qmp passthrough by uid %u: refused: %s", uid, v.why);
		sv_reply_err(req, v.cls, "refused by qsupd: %s", v.why);
		return;
	}
	sv_log(SV_LOG_INFO, g->name, "qmp passthrough by uid %u: %s", uid, cmd);
	struct sv_error err = { 0 };
	int rc = sv_guest_qmp(g, cmd, qargs, req, &err);
	if (rc < 0) {
		sv_reply_err(req, rc == -ENOTCONN ? "InvalidState" : "GenericError", "%s", err.msg);
		return;
	}
	/* Sent is enough: QEMU may have acted even if the reply says otherwise. */
	if (v.taints && taint_of(g) && sv_taint_add(g->taint, cmd))
		sv_guest_persist(g);
}
