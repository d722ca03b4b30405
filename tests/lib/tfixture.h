/*
 * The fixture most integration tests share: one real qsupd (tdaemon.h) and
 * one control connection to it, set up and torn down around each test. The
 * teardown requires a clean exit on SIGTERM (sanitizers report there too).
 * Test code only (it uses cmocka).
 */
#ifndef TFIXTURE_H
#define TFIXTURE_H

#include <stdbool.h>
#include <jansson.h>

#include "tdaemon.h"

struct t_fx {
	struct t_daemon d;
	struct t_ctl c;         /* fd -1 until connected */
};

/* cmocka setup and teardown: *state is a struct t_fx. */
int t_fx_setup(void **state);
int t_fx_teardown(void **state);

/* Start the daemon with extra arguments (NULL-terminated, may be NULL) and
 * connect x->c to it; a failure ends the test with the daemon's log. */
void t_fx_up(struct t_fx *x, const char *const *extra);

/* verb on guest name must succeed: its "return" (a new reference); a
 * failure ends the test with the daemon's log. */
json_t *t_fx_must(struct t_fx *x, const char *verb, const char *name, int ms);

/* Whether the daemon's whole log holds text (t_daemon_log() is only its
 * tail). */
bool t_fx_log_has(struct t_fx *x, const char *text);

/* The next GUEST_STATE of guest name entering state on ev (a subscribed
 * connection), within ms; its reason (static). A timeout ends the test
 * with the daemon's log. */
const char *t_fx_wait_state(struct t_fx *x, struct t_ctl *ev, const char *name,
                            const char *state, int ms);

/* Two daemons, a and b, each with a connection (the migration tests):
 * both initialised, the connections not yet open (fd -1). */
void t_pair_init(struct t_daemon *a, struct t_daemon *b, struct t_ctl *ca, struct t_ctl *cb);
/* The connections closed if open, both daemons finished; each must have
 * exited cleanly. */
void t_pair_finish(struct t_daemon *a, struct t_daemon *b, struct t_ctl *ca, struct t_ctl *cb);
/* Start d (no extra arguments) and connect c to it; a failure ends the
 * test with the daemon's log. */
void t_daemon_up(struct t_daemon *d, struct t_ctl *c);

#endif
