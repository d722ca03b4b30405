/* Why a guest's QEMU ended: see exitclass.h. */
#include <stdio.h>
#include <string.h>

#include "exitclass.h"

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

/* How the process ended: "killed by signal 9 (SIGKILL)"... */
static void how_text(const struct sv_exit_facts *f, char *how, size_t size)
{
	const char *abbrev = f->sig ? sigabbrev_np(f->sig) : NULL;
	if (f->adopted)
		snprintf(how, size, "ended, exit status unknown (adopted: not our child)");
	else if (f->sig)
		snprintf(how, size, "killed by signal %d (SIG%s)", f->sig, abbrev ? abbrev : "?");
	else
		snprintf(how, size, "exited with status %lld", (long long)f->status);
}

/* QEMU ended before the guest ran: a start (or a re-adoption) that did not
 * get as far as running. */
static enum sv_exit_class start_ended(const struct sv_exit_facts *f, const char *how,
                                      char *what, size_t size)
{
	const char *tail = or_empty(f->log_tail), *why = or_empty(f->start_fail);
	if (f->adopted) {
		/* It was running before we came back: an ending, not a failed start. */
		snprintf(what, size, "QEMU crashed while being re-adopted: %s", how);
		if (f->panicked)
			return SV_EXIT_PANIC;
		return f->guest_shutdown ? SV_EXIT_POWEROFF : SV_EXIT_CRASH;
	}
	if (why[0])     /* qsupd ended it, and says why */
		snprintf(what, size, "start failed: %s (QEMU %s: %s)", why, how,
		         tail[0] ? tail : "nothing on stderr");
	else
		snprintf(what, size, "start failed: QEMU %s: %s", how,
		         tail[0] ? tail : "(nothing on stderr)");
	return SV_EXIT_START_FAILURE;
}

/* QEMU ended a guest that had run, neither by the operator's hand nor by a
 * migration. */
static enum sv_exit_class run_ended(const struct sv_exit_facts *f, const char *how,
                                    char *what, size_t size)
{
	const char *reason = or_empty(f->shutdown_reason);
	if (f->internal_error) {
		/* QEMU cannot run the guest any more (a KVM failure, "emulation
		 * failure" in its log): qsupd ended it, and that is a crash. */
		snprintf(what, size, "crashed: QEMU internal error (run state internal-error, "
		         "see QEMU's log); qsupd ended QEMU: %s", how);
		return SV_EXIT_INTERNAL_ERROR;
	}
	if (f->panicked) {
		snprintf(what, size, "guest panicked (GUEST_PANICKED; QEMU %s)", how);
		return SV_EXIT_PANIC;
	}
	if (f->guest_shutdown) {
		snprintf(what, size, "guest powered off");
		return SV_EXIT_POWEROFF;
	}
	if (f->sig || f->status != 0) {
		snprintf(what, size, "QEMU crashed: %s", how);
		return SV_EXIT_CRASH;
	}
	if (!f->shutdown_seen) {
		snprintf(what, size, "QEMU crashed: it ended without SHUTDOWN (%s)", how);
		return SV_EXIT_CRASH;
	}
	if (strcmp(reason, "host-signal") == 0) {
		/* Someone outside qsup sent QEMU SIGTERM/SIGINT/SIGHUP: QEMU shuts
		 * down cleanly, but the guest was killed all the same. */
		snprintf(what, size, "QEMU crashed: terminated by a signal from outside qsup "
		         "(SHUTDOWN host-signal)");
		return SV_EXIT_CRASH;
	}
	snprintf(what, size, "QEMU quit (SHUTDOWN %s)", reason[0] ? reason : "requested");
	return SV_EXIT_QUIT;
}

enum sv_exit_class sv_exit_classify(const struct sv_exit_facts *f, char *what, size_t size)
{
	char how[64];
	const char *tail = or_empty(f->log_tail);
	how_text(f, how, sizeof(how));
	if (f->migrated) {
		snprintf(what, size, "%s %s", f->saved ? "saved to" : "migrated to",
		         or_empty(f->where));
		return f->saved ? SV_EXIT_SAVED : SV_EXIT_MIGRATED;
	}
	if (f->was == SV_INCOMING && !f->force_kill) {
		snprintf(what, size, "incoming migration failed: QEMU %s: %s", how,
		         tail[0] ? tail : "(nothing on stderr)");
		return SV_EXIT_INCOMING;
	}
	if (f->was == SV_STARTING)
		return start_ended(f, how, what, size);
	if (f->force_kill) {
		snprintf(what, size, "killed by operator");
		return SV_EXIT_OPERATOR;
	}
	if (f->was == SV_STOPPING) {
		snprintf(what, size, "stopped by operator (%s%s)", f->guest_shutdown
		         ? "guest powered off" : "QEMU ", f->guest_shutdown ? "" : how);
		return SV_EXIT_OPERATOR;
	}
	return run_ended(f, how, what, size);
}
