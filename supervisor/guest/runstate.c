/*
 * QEMU's run state, when QEMU stops the guest's vCPUs on its own (a STOP
 * event nobody asked for, or what the health probe or a re-adoption
 * finds): why, in the guest's state and reason. An I/O error pauses the
 * guest with the profile's disk named (from BLOCK_IO_ERROR); an internal
 * error (KVM failed) is a crash: QEMU is ended and the restart policy
 * applies (supervise.c, exitclass.c).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "argv.h"
#include "guest_int.h"
#include "log.h"
#include "machine.h"
#include "qmp.h"
#include "request.h"

#define QUIT_MS 5000            /* quit, then SIGKILL */

static void quit_reply(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct sv_guest *g = arg;
	(void)c;
	if (r->status != 0 && r->status != UV_EOF && r->status != UV_ECANCELED)
		sv_log(SV_LOG_WARN, g->name, "quit: %s", r->err_desc ? r->err_desc
		       : qmp_strerror(r->status));
}

/* A BLOCK_IO_ERROR that stops the guest (QEMU's werror/rerror "stop";
 * virtio disks stop on ENOSPC by default): which disk, and why. The first
 * one since the guest last ran is logged and emitted as GUEST_IO_ERROR
 * (each failed request gets an event of its own). */
void sv_guest_io_error(struct sv_guest *g, json_t *data)
{
	const char *node = sv_jstr(data, "node-name", "");
	char disk[sizeof(g->io_disk)];
	if (strcmp(sv_jstr(data, "action", ""), "stop") != 0)
		return;   /* reported to the guest, or ignored: it runs on */
	sv_argv_node_device(*node ? node : sv_jstr(data, "device", "?"), disk, sizeof(disk));
	if (strcmp(disk, g->io_disk) == 0)
		return;
	snprintf(g->io_disk, sizeof(g->io_disk), "%s", disk);
	snprintf(g->io_error, sizeof(g->io_error), "%s", sv_jstr(data, "reason", "I/O error"));
	snprintf(g->io_op, sizeof(g->io_op), "%s", sv_jstr(data, "operation", "?"));
	sv_log(SV_LOG_ERR, g->name, "I/O error on disk %s (%s): %s; QEMU pauses the guest "
	       "until it is resumed", g->io_disk, g->io_op, g->io_error);
	sv_emit(g->route, json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:b}}", "event",
	                "GUEST_IO_ERROR", "guest", g->name, "data", "name", g->name,
	                "disk", g->io_disk, "operation", g->io_op, "error", g->io_error,
	                "nospace", json_is_true(json_object_get(data, "nospace"))));
}

static void on_stop_status(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct sv_guest *g = arg;
	(void)c;
	if (g->freeing)
		return;
	if (r->status == 0)
		sv_guest_runstate(g, json_string_value(json_object_get(r->ret, "status")),
		                  "vCPUs stopped (QMP STOP event)");
	else if (r->status != UV_ECANCELED && r->status != UV_EOF)
		sv_guest_runstate(g, "paused", "vCPUs stopped (QMP STOP event)");
}

void sv_guest_stopped_by_qemu(struct sv_guest *g)
{
	if (!g->qmp || qmp_client_execute(g->qmp, "query-status", NULL, 0, on_stop_status, g) < 0)
		sv_guest_runstate(g, "paused", "vCPUs stopped (QMP STOP event)");
}

static void on_internal_error_timer(uv_timer_t *t)
{
	struct sv_guest *g = t->data;
	if (!sv_guest_active(g) || g->state == SV_STOPPING)
		return;
	sv_log(SV_LOG_WARN, g->name, "QEMU did not quit; sending SIGKILL");
	sv_guest_signal(g, SIGKILL);
}

/* QEMU cannot run the guest any more (internal-error: KVM failed, with
 * "emulation failure" and the registers in its log). cont is refused
 * there, so nothing but a new QEMU brings the guest back: end this one
 * (quit, then SIGKILL), and the restart policy sees a crash. */
static void end_internal_error(struct sv_guest *g)
{
	if (g->internal_error || !sv_state_is_up(g->state))
		return;
	g->internal_error = true;
	sv_guest_persist(g);
	sv_log(SV_LOG_ERR, g->name, "QEMU stopped the guest on an internal error (run state "
	       "internal-error; QEMU's log says why); ending QEMU");
	if (g->state == SV_RUNNING)
		sv_guest_transition(g, SV_PAUSED, "QEMU internal error (run state "
		                    "internal-error): ending QEMU");
	if (g->qmp && qmp_client_is_ready(g->qmp))
		qmp_client_execute(g->qmp, "quit", NULL, QUIT_MS, quit_reply, g);
	uv_timer_start(&g->timer, on_internal_error_timer, QUIT_MS, 0);
}

void sv_guest_runstate(struct sv_guest *g, const char *st, const char *reason)
{
	char why[sizeof(g->reason)];
	if (!st)
		return;
	if (strcmp(st, "running") == 0) {
		if (g->state == SV_PAUSED)
			sv_guest_transition(g, SV_RUNNING, "running (QEMU says so)");
		return;
	}
	if (strcmp(st, "internal-error") == 0) {
		end_internal_error(g);
		return;
	}
	if (g->state != SV_RUNNING)
		return;
	if (strcmp(st, "io-error") == 0 && g->io_disk[0])
		snprintf(why, sizeof(why), "I/O error on disk %s: %s", g->io_disk, g->io_error);
	else if (strcmp(st, "io-error") == 0)
		snprintf(why, sizeof(why), "I/O error");
	else if (reason && strcmp(st, "paused") == 0)
		snprintf(why, sizeof(why), "%s", reason);
	else
		snprintf(why, sizeof(why), "QEMU status %s", st);
	sv_guest_transition(g, SV_PAUSED, why);
}
