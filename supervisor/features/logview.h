/*
 * The `log` verb: the end of a guest's log file (QEMU's output and qsupd's
 * lifecycle lines, guestlog.h), and with follow, every line appended to it
 * afterwards, as LOG events to the asker alone until it disconnects (as
 * `journalctl -u` and `tail -f`). Files are read in the thread pool,
 * from their end; a rotation (NAME.log to NAME.log.1) is followed.
 */
#ifndef SV_LOGVIEW_H
#define SV_LOGVIEW_H

#include <jansson.h>

struct sv_error;
struct sv_guest;
struct sv_request;

#define SV_LOGVIEW_LINES 50             /* lines, when not given */
#define SV_LOGVIEW_MAX_LINES 10000
#define SV_LOGVIEW_MAX_FOLLOW 64        /* followers at once, in all */
#define SV_LOGVIEW_MAX_FOLLOW_PEER 4    /* ... per client */
#define SV_LOGVIEW_TICK_MS 250          /* how often a followed file is read */

/* The verb's arguments beyond the name: "lines" an integer from 1 to
 * SV_LOGVIEW_MAX_LINES, "follow" a boolean. Returns 0 or -EINVAL with err
 * set. Pure. */
int sv_logview_check(json_t *args, struct sv_error *err);

/* Answer req with {"name", "file", "lines": [the last lines, oldest
 * first, from NAME.log.1 too when NAME.log has fewer], "follow"}; with
 * follow, go on sending {"event": "LOG", "guest": NAME, "data": {"line":
 * LINE}} to the asker as lines are appended, until it disconnects. */
void sv_logview_cmd(struct sv_guest *g, struct sv_request *req, json_t *args);

#endif
