/* The shared test fixture: see tfixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <cmocka.h>

#include "tfixture.h"

int t_fx_setup(void **state)
{
	struct t_fx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	assert_int_equal(t_daemon_init(&x->d), 0);
	x->c.fd = -1;
	*state = x;
	return 0;
}

int t_fx_teardown(void **state)
{
	struct t_fx *x = *state;
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	assert_int_equal(t_daemon_finish(&x->d), 0);
	free(x);
	return 0;
}

void t_fx_up(struct t_fx *x, const char *const *extra)
{
	if (t_daemon_start(&x->d, extra) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
}

json_t *t_fx_must(struct t_fx *x, const char *verb, const char *name, int ms)
{
	json_t *r = t_ctl_do(&x->c, verb, name, ms, NULL);
	if (!r)
		fail_msg("%s %s failed; daemon log:\n%s", verb, name, t_daemon_log(&x->d));
	return r;
}

bool t_fx_log_has(struct t_fx *x, const char *text)
{
	return t_daemon_log_has(&x->d, text);
}

const char *t_fx_wait_state(struct t_fx *x, struct t_ctl *ev, const char *name,
                            const char *state, int ms)
{
	static char reason[1024];
	json_t *e = t_ctl_wait_state(ev, name, state, ms);
	if (!e)
		fail_msg("%s never became %s; log:\n%s", name, state, t_daemon_log(&x->d));
	snprintf(reason, sizeof(reason), "%s", t_str(json_object_get(e, "data"), "reason"));
	json_decref(e);
	return reason;
}

void t_pair_init(struct t_daemon *a, struct t_daemon *b, struct t_ctl *ca, struct t_ctl *cb)
{
	assert_int_equal(t_daemon_init(a), 0);
	assert_int_equal(t_daemon_init(b), 0);
	ca->fd = cb->fd = -1;
}

void t_pair_finish(struct t_daemon *a, struct t_daemon *b, struct t_ctl *ca, struct t_ctl *cb)
{
	if (ca->fd >= 0)
		t_ctl_close(ca);
	if (cb->fd >= 0)
		t_ctl_close(cb);
	int sa = t_daemon_finish(a), sb = t_daemon_finish(b);
	assert_int_equal(sa, 0);
	assert_int_equal(sb, 0);
}

void t_daemon_up(struct t_daemon *d, struct t_ctl *c)
{
	if (t_daemon_start(d, NULL) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(d));
	assert_int_equal(t_ctl_open(c, d->sock), 0);
}
