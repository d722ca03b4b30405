/*
 * qsupd's log. One message per call, prefixed with the guest's name when
 * there is one. Where it goes is decided once (sv_log_open):
 *  - under systemd, when $JOURNAL_STREAM names qsupd's stderr, natively to
 *    the journal (sd_journal_sendv): MESSAGE, PRIORITY (syslog numbers),
 *    SYSLOG_IDENTIFIER=qsupd, QSUP_GUEST when there is a guest and
 *    MESSAGE_ID for the key events below. When the journal refuses a
 *    message (not there, say), it goes to stderr instead, and stderr says
 *    so once;
 *  - else to stderr, one line per message with one write(2):
 *      2026-11-30T10:36:23.123+01:00 qsupd[812]: warning: web1: QEMU crashed
 * Full QMP and control traffic is logged at debug level only.
 */
#ifndef SV_LOG_H
#define SV_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum sv_log_level { SV_LOG_DEBUG, SV_LOG_INFO, SV_LOG_WARN, SV_LOG_ERR };

/* The journal's MESSAGE_ID of the key events of a guest's life (fixed:
 * qsupd(8), LOGGING, lists them; journalctl MESSAGE_ID=... finds them). */
#define SV_MSGID_STARTED   "cf275517b5e44974b41c5c931e1135bc"  /* QEMU started */
#define SV_MSGID_EXITED    "d7fc05d9701346b2b9f6e552b285bc88"  /* QEMU ended (why) */
#define SV_MSGID_RESTART   "384e9a0f8d6c4faa92e70e91c36824ad"  /* restart scheduled */
#define SV_MSGID_FAILED    "83c4b07ea6b1433a93d3f9dc370d89b4"  /* quarantined (failed) */
#define SV_MSGID_MIGRATED  "16d11d94dc7045718b9ac6b4bad86a3c"  /* migration completed */

/* Messages below level are dropped. The default is SV_LOG_INFO. */
void sv_log_set_level(enum sv_log_level level);

/* True when messages of level would be printed (to skip costly formatting). */
bool sv_log_enabled(enum sv_log_level level);

/* Parse "debug", "info", "warning" (or "warn"), "error". Returns 0 or -EINVAL. */
int sv_log_level_parse(const char *s, enum sv_log_level *out);

/* Decide (again) where messages go: the journal when $JOURNAL_STREAM is
 * "DEV:INODE" of stderr, else stderr. The first message decides when this
 * was never called. Returns true for the journal. */
bool sv_log_open(void);

/* Log a message; guest may be NULL. */
void sv_log(enum sv_log_level level, const char *guest, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The same for a key event: msgid (one of SV_MSGID_*, or NULL) becomes the
 * journal's MESSAGE_ID (stderr lines look the same as sv_log's). */
void sv_log_event(enum sv_log_level level, const char *guest, const char *msgid,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The wall-clock time now as ISO 8601 local time with its UTC offset,
 * "2026-11-30T10:36:23.123+01:00" (without the milliseconds when ms is
 * false), into buf (at least 32 bytes). Returns buf. */
char *sv_log_time(char *buf, size_t size, bool ms);

#endif
