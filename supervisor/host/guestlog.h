/*
 * A guest's log file, LOGDIR/NAME.log (as libvirt's
 * /var/log/libvirt/qemu/NAME.log): QEMU's standard output and error, run
 * after run, and qsupd's lifecycle lines for the guest between them, each
 * a whole line written with one write(2) and marked " qsup: " after its
 * time:
 *   2026-11-30T10:36:23.123+01:00 qsup: start (reason: restart after crash 2/5)
 * Before a run starts, a file over the size cap becomes NAME.log.1 (one
 * older file is kept). Reading the end of a file (the last N lines of a
 * byte range) is here too, for the guest core (what a run left) and for the
 * `log` verb (in the thread pool). Plain blocking calls on small amounts:
 * the callers decide where they run.
 */
#ifndef SV_GUESTLOG_H
#define SV_GUESTLOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define SV_GLOG_MARK " qsup: "          /* after the time, on qsupd's lines */
#define SV_GLOG_MAX_DEFAULT (1u << 20)  /* --log-max-size */
#define SV_GLOG_LINE_MAX 2048           /* a lifecycle line, newline included */

/* DIR/NAME.log into buf. Returns 0 or -ENAMETOOLONG. */
int sv_glog_path(const char *dir, const char *name, char *buf, size_t size);

/* Open path for a new run: first, when it holds more than max bytes (max
 * 0: never), rename it to path.1, replacing the older one (*rotated
 * true); then open it for appending, created 0640 when missing. Returns
 * the fd (O_CLOEXEC), or a negative errno with err set (the path and
 * what failed). A link is never followed. */
int sv_glog_open_run(const char *path, uint64_t max, bool *rotated, struct sv_error *err);

/* A lifecycle line "TIME qsup: TEXT\n" (TEXT from fmt) into buf (at least
 * SV_GLOG_LINE_MAX bytes): a newline inside TEXT becomes a space, and a
 * TEXT too long is cut. Returns its length. */
size_t sv_glog_vformat(char *buf, size_t size, const char *fmt, va_list ap);

/* Append len bytes with one write(2): to fd, or, when fd < 0, to path
 * opened for appending (created 0640) and closed again. Returns 0, or a
 * negative errno (a short write is -ENOSPC). */
int sv_glog_append(int fd, const char *path, const char *line, size_t len);

/* True when line (len bytes, no newline) is one of qsupd's lifecycle
 * lines: a time stamp, then SV_GLOG_MARK. */
bool sv_glog_is_ours(const char *line, size_t len);

/* The last nlines lines of the bytes [from, end) of fd, oldest first,
 * appended to out: at most maxbytes are read (a longer range loses its
 * beginning; a line cut there is dropped). A line is a run of bytes up to
 * a newline; a last line without its newline counts only with partial
 * (else *complete, if not NULL, gets the offset just past the last newline
 * in the range, or from when there is none). Without ours, qsupd's
 * lifecycle lines are skipped (not counted). NUL bytes become '?', a
 * carriage return before the newline goes, text that is not UTF-8 is
 * scrubbed (sv_utf8_scrub). Returns 0 or a negative errno. */
int sv_glog_tail(int fd, int64_t from, int64_t end, size_t nlines, size_t maxbytes,
                 bool partial, bool ours, struct sv_strv *out, int64_t *complete);

/* Split len bytes of text into lines appended to out (cleaned as
 * sv_glog_tail does; every line must end with a newline: a rest without
 * one is left). Returns the number of bytes used (up to and including the
 * last newline). */
size_t sv_glog_split(const char *text, size_t len, struct sv_strv *out);

#endif
