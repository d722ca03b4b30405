/*
 * Why a guest's QEMU ended, as a pure function: the facts the supervisor
 * gathered (what QEMU reported over QMP, how the process ended, the state
 * the guest was in, what the operator asked for, the migration's outcome,
 * the tail of qemu.log already read) in, the exit class and the words for
 * it out. No I/O: supervise.c gathers, tests/unit/test-exitclass.c checks
 * every branch.
 */
#ifndef SV_EXITCLASS_H
#define SV_EXITCLASS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "machine.h"
#include "restart.h"

struct sv_exit_facts {
	enum sv_state was;              /* the guest's state when QEMU ended */
	int64_t status;                 /* exit status (0 when killed, or unknown) */
	int sig;                        /* the killing signal, or 0 */
	bool adopted;                   /* not our child: status and sig unknown */
	bool force_kill;                /* the operator's kill */
	bool panicked;                  /* GUEST_PANICKED seen */
	bool internal_error;            /* QEMU was in run state internal-error */
	bool shutdown_seen;             /* a SHUTDOWN event seen */
	bool guest_shutdown;            /* ... with guest: true */
	const char *shutdown_reason;    /* the first SHUTDOWN's reason, or "" */
	const char *start_fail;         /* why qsupd ended the start, or "" */
	bool migrated;                  /* an outgoing migration or save completed */
	bool saved;                     /* ... and it was a save */
	const char *where;              /* to where (URI), or the save file */
	const char *log_tail;           /* qemu.log's last lines, or "" */
};

/* Classify the ending described by f; its description goes into what
 * (size bytes, always terminated). NULL strings in f count as "". */
enum sv_exit_class sv_exit_classify(const struct sv_exit_facts *f, char *what, size_t size);

#endif
