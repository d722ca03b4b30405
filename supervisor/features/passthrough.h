/*
 * The qmp verb: one QMP command passed through to a guest's QEMU, within
 * what the guest's profile allows ([qemu] qmp-passthrough = full | query |
 * off) and never one that would break qsupd's own view of the guest (quit,
 * HMP, the migration and fd commands, deleting what qsupd tracks, stop and
 * cont while qsupd drives a migration...). See qsupd(8), the qmp verb.
 *
 * Every command is logged at info level with the client's uid, refused ones
 * with the reason. An allowed command that is not a query-* taints the guest
 * (as libvirt's "custom-monitor" does) until its next QEMU start: status
 * shows "tainted" and the commands that did it, and state.json keeps them
 * for a re-adopting qsupd.
 *
 * sv_passthrough_decide() is pure: the decision depends only on its
 * arguments, so it is unit-tested without QEMU.
 */
#ifndef SV_PASSTHROUGH_H
#define SV_PASSTHROUGH_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "profile.h"

struct sv_guest;
struct sv_request;

/* Distinct commands remembered per taint; more still taint, unnamed. */
#define SV_TAINT_MAX 16
/* Longest QMP command name passed through (QEMU's are far shorter). */
#define SV_QMP_NAME_MAX 64

/* The taint of one guest, embedded in struct sv_guest. */
struct sv_taint {
	bool tainted;
	unsigned n;                             /* names in cmds */
	char cmds[SV_TAINT_MAX][SV_QMP_NAME_MAX + 1];
};

/* What the decision needs to know about the guest. */
struct sv_pt_facts {
	enum sv_qmp_passthrough policy;
	const char *guest;              /* its name, for messages */
	/* Non-NULL: the state name ("incoming", "migrating", "starting",
	 * "migrated") in which qsupd itself drives stop and cont. */
	const char *busy;
	/* The profile the running QEMU was started with (its devices, block
	 * nodes and netdevs are qsupd's); NULL: none. */
	const struct sv_profile *profile;
	/* Whether name is a hot-plugged device, or one of its backends, that
	 * qsupd tracks; NULL: none are. */
	bool (*hotplugged)(void *ctx, const char *name);
	void *ctx;
};

/* The decision about one command. */
struct sv_pt_verdict {
	bool allow;
	bool taints;            /* allowed, and not a query-* command */
	const char *cls;        /* refused: "PermissionDenied", "InvalidState"
	                         * or "InvalidArgument" */
	char why[320];          /* refused: "COMMAND...: why; what to use" */
};

/* Decide whether command, with its arguments args (an object or NULL), may
 * be passed through for a guest described by f. Pure. Refusals, in order:
 * a malformed command name (InvalidArgument); the profile's policy, off or
 * query (PermissionDenied); a command reserved to qsupd, or one that would
 * delete or re-route something qsupd tracks (PermissionDenied); stop or
 * cont while f->busy (InvalidState). */
void sv_passthrough_decide(const char *command, json_t *args, const struct sv_pt_facts *f,
                           struct sv_pt_verdict *v);

/* Who owns a name in QEMU, as far as qsupd is concerned. */
enum sv_pt_owner {
	SV_PT_NOBODY,
	SV_PT_PROFILE,          /* a profile device, its port, block nodes or netdev */
	SV_PT_QSUPD,            /* qsupd's own: QMP and serial chardevs, fixed devices */
	SV_PT_HOTPLUG,          /* a hot-plugged device or one of its backends */
};

/* Who owns name (a device id, block node name, netdev, object or chardev
 * id) in a QEMU run for f; what gets it in words ("disk root", "the block
 * node drive.root of disk root"...). Pure. */
enum sv_pt_owner sv_passthrough_owner(const struct sv_pt_facts *f, const char *name,
                                      char *what, size_t size);

/* The qmp verb: args {name, command, arguments}. Checks them, decides, logs
 * "NAME: qmp passthrough by uid U: ...", then answers req with QEMU's reply
 * or error intact, or with the refusal. */
void sv_passthrough_qmp(struct sv_guest *g, struct sv_request *req, json_t *args);

/* Remember that command tainted t (de-duplicated, at most SV_TAINT_MAX
 * names; returns true when t changed); forget every taint. */
bool sv_taint_add(struct sv_taint *t, const char *command);
void sv_taint_clear(struct sv_taint *t);

/* What the passthrough hears of a guest (guest.h): a new QEMU clears its
 * taint; the status gets "tainted" (boolean) and "taint" (the commands). */
extern const struct sv_guest_observer sv_passthrough_observer;

/* For state.json: set "taint" in js when the guest is tainted; take it
 * back from a saved state object (anything malformed is ignored). */
void sv_passthrough_save(struct sv_guest *g, json_t *js);
void sv_passthrough_restore(struct sv_guest *g, json_t *saved);

#endif
