/*
 * The `log` verb (logview.h). A request is one thread-pool job that reads
 * the end of NAME.log (and of NAME.log.1 when that is short of lines) and
 * keeps NAME.log open when the asker follows it. A follower then wakes
 * every SV_LOGVIEW_TICK_MS: a job reads what was appended since (at most
 * FOLLOW_CHUNK per tick), and notices a rotation (the path names another
 * file, or none: the old one is read to its end first, then the new one
 * from its start); back on the loop the lines go to the asker as LOG
 * events. The follower ends at the first tick or line that finds its
 * asker gone. No job is ever in flight when it ends: the timer starts
 * none while one runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "guest.h"
#include "guestlog.h"
#include "log.h"
#include "logview.h"
#include "request.h"

#define TAIL_BYTES (8u << 20)       /* read at most this much of a file's end */
#define FOLLOW_CHUNK (1u << 20)     /* per tick */
#define CARRY_MAX (64u << 10)       /* a longer line without newline is sent cut */

struct follower {
	struct follower *next;
	const struct sv_route *route;
	uint64_t peer;
	char name[SV_NAME_MAX + 1];
	char path[4200];
	uv_timer_t timer;
	uv_work_t work;
	bool busy;
	/* The file being read (-1: none yet), where, and what it is. Only the
	 * job touches these while busy. */
	int fd;
	int64_t pos;
	uint64_t ino;
	char *carry;                /* the start of a line, without its newline */
	size_t carry_len;
	struct sv_strv lines;       /* read by the job, sent by the loop */
};

static struct follower *followers;
static unsigned nfollowers;

/* ---- the request ---- */

struct tail_job {
	uv_work_t work;
	struct sv_request *req;
	const struct sv_route *route;
	uint64_t peer;
	char name[SV_NAME_MAX + 1];
	char path[4200];
	size_t nlines;
	bool follow;
	int err;                    /* errno, reading path */
	struct sv_strv lines;
	int fd;                     /* follow: NAME.log, open */
	int64_t pos;
	uint64_t ino;
};

int sv_logview_check(json_t *args, struct sv_error *err)
{
	json_t *lines = json_object_get(args, "lines"), *follow = json_object_get(args, "follow");
	if (lines && (!json_is_integer(lines) || json_integer_value(lines) < 1 ||
	              json_integer_value(lines) > SV_LOGVIEW_MAX_LINES))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "lines must be a number "
		                     "from 1 to %d", SV_LOGVIEW_MAX_LINES);
	if (follow && !json_is_boolean(follow))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "follow must be true or "
		                     "false");
	return 0;
}

/* The last n lines of the file at path, appended to out. *fd_out, when not
 * NULL, keeps it open (-1: there is none) with *pos just past its last
 * complete line: what a follower starts from. Returns 0 or an errno. */
static int tail_of(const char *path, size_t n, struct sv_strv *out, int *fd_out,
                   int64_t *pos, uint64_t *ino)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? 0 : errno;
	int e = fstat(fd, &st) < 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;
	if (e) {
		close(fd);
		return e;
	}
	int rc = sv_glog_tail(fd, 0, st.st_size, n, TAIL_BYTES, !fd_out, true, out, pos);
	if (fd_out && rc == 0) {
		*fd_out = fd;
		*ino = (uint64_t)st.st_ino;
	} else {
		close(fd);
	}
	return -rc;
}

static void tail_work(uv_work_t *w)
{
	struct tail_job *j = w->data;
	struct sv_strv cur = { 0 }, old = { 0 };
	char older[4300];
	j->err = tail_of(j->path, j->nlines, &cur, j->follow ? &j->fd : NULL, &j->pos, &j->ino);
	snprintf(older, sizeof(older), "%s.1", j->path);
	if (!j->err && cur.n < j->nlines)
		j->err = tail_of(older, j->nlines - cur.n, &old, NULL, NULL, NULL);
	for (size_t i = 0; i < old.n; i++)
		sv_strv_push(&j->lines, old.v[i]);
	for (size_t i = 0; i < cur.n; i++)
		sv_strv_push(&j->lines, cur.v[i]);
	sv_strv_free(&old);
	sv_strv_free(&cur);
}

/* ---- following ---- */

static void on_closed(uv_handle_t *h)
{
	struct follower *f = h->data;
	if (f->fd >= 0)
		close(f->fd);
	free(f->carry);
	sv_strv_free(&f->lines);
	free(f);
}

static void follower_end(struct follower *f)
{
	for (struct follower **pp = &followers; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	nfollowers--;
	sv_log(SV_LOG_DEBUG, f->name, "log: client %llu no longer follows it",
	       (unsigned long long)f->peer);
	uv_close((uv_handle_t *)&f->timer, on_closed);
}

/* Add len bytes read to the carry, and its complete lines to f->lines. */
static void take_bytes(struct follower *f, const char *buf, size_t len)
{
	char *c = realloc(f->carry, f->carry_len + len + 1);
	if (!c)
		return;
	f->carry = c;
	memcpy(c + f->carry_len, buf, len);
	f->carry_len += len;
	size_t used = sv_glog_split(c, f->carry_len, &f->lines);
	memmove(c, c + used, f->carry_len - used);
	f->carry_len -= used;
	if (f->carry_len >= CARRY_MAX) {   /* a line that never ends: send it cut */
		c[f->carry_len++] = '\n';
		sv_glog_split(c, f->carry_len, &f->lines);
		f->carry_len = 0;
	}
}

/* Read what f's file has past f->pos (at most FOLLOW_CHUNK). Returns true
 * when it was read to its end. */
static bool read_more(struct follower *f)
{
	struct stat st;
	if (fstat(f->fd, &st) < 0)
		return true;
	if (st.st_size < f->pos) {   /* cut short by someone: start over */
		f->pos = 0;
		f->carry_len = 0;
	}
	size_t want = (size_t)(st.st_size - f->pos);
	if (want > FOLLOW_CHUNK)
		want = FOLLOW_CHUNK;
	char *buf = want ? malloc(want) : NULL;
	ssize_t n = buf ? pread(f->fd, buf, want, (off_t)f->pos) : 0;
	if (n > 0) {
		take_bytes(f, buf, (size_t)n);
		f->pos += n;
	}
	free(buf);
	return n <= 0 || f->pos >= st.st_size;
}

static void follow_work(uv_work_t *w)
{
	struct follower *f = w->data;
	struct stat st;
	for (int pass = 0; pass < 2; pass++) {
		if (f->fd < 0) {
			f->fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
			if (f->fd < 0 || fstat(f->fd, &st) < 0) {
				if (f->fd >= 0)
					close(f->fd);
				f->fd = -1;
				return;   /* not there (yet) */
			}
			f->ino = (uint64_t)st.st_ino;
			f->pos = 0;
		}
		if (!read_more(f))
			return;   /* more next tick */
		/* At its end: is it still the file at path? */
		if (stat(f->path, &st) == 0 && (uint64_t)st.st_ino == f->ino)
			return;
		if (f->carry_len) {   /* the old file's last line had no newline */
			take_bytes(f, "\n", 1);
		}
		close(f->fd);
		f->fd = -1;   /* rotated: the new one, from its start */
	}
}

static void follow_done(uv_work_t *w, int status)
{
	struct follower *f = w->data;
	bool alive = status == 0;
	f->busy = false;
	for (size_t i = 0; alive && i < f->lines.n; i++)
		alive = sv_emit_to(f->route, f->peer, json_pack("{s:s, s:s, s:{s:s}}", "event",
		                   "LOG", "guest", f->name, "data", "line", f->lines.v[i]));
	sv_strv_free(&f->lines);
	if (!alive)
		follower_end(f);
}

static void on_tick(uv_timer_t *t)
{
	struct follower *f = t->data;
	if (f->busy)
		return;
	if (!sv_emit_to(f->route, f->peer, NULL)) {   /* the asker has gone */
		follower_end(f);
		return;
	}
	f->work.data = f;
	if (uv_queue_work(t->loop, &f->work, follow_work, follow_done) == 0)
		f->busy = true;
}

static unsigned peer_followers(const struct sv_route *r, uint64_t peer)
{
	unsigned n = 0;
	for (struct follower *f = followers; f; f = f->next)
		n += f->route == r && f->peer == peer;
	return n;
}

/* Start following for j's asker (j's fd and position are taken). */
static void follow_start(uv_loop_t *loop, struct tail_job *j)
{
	struct follower *f = calloc(1, sizeof(*f));
	if (!f) {
		if (j->fd >= 0)
			close(j->fd);
		return;
	}
	f->route = j->route;
	f->peer = j->peer;
	snprintf(f->name, sizeof(f->name), "%s", j->name);
	snprintf(f->path, sizeof(f->path), "%s", j->path);
	f->fd = j->fd;
	f->pos = j->pos;
	f->ino = j->ino;
	j->fd = -1;
	uv_timer_init(loop, &f->timer);
	f->timer.data = f;
	uv_timer_start(&f->timer, on_tick, SV_LOGVIEW_TICK_MS, SV_LOGVIEW_TICK_MS);
	f->next = followers;
	followers = f;
	nfollowers++;
	sv_log(SV_LOG_DEBUG, f->name, "log: client %llu follows %s",
	       (unsigned long long)f->peer, f->path);
}

static void tail_done(uv_work_t *w, int status)
{
	struct tail_job *j = w->data;
	int e = status < 0 ? ECANCELED : j->err;
	if (e) {
		sv_reply_err(j->req, "GenericError", "%s: %s", j->path, strerror(e));
	} else {
		json_t *lines = json_array();
		for (size_t i = 0; i < j->lines.n; i++)
			json_array_append_new(lines, json_string(j->lines.v[i]));
		sv_reply_ok(j->req, json_pack("{s:s, s:s?, s:o, s:b}", "name", j->name, "file",
		                              j->path, "lines", lines, "follow", j->follow));
		if (j->follow)   /* after the reply: the events come after it */
			follow_start(w->loop, j);
	}
	if (j->fd >= 0)
		close(j->fd);
	sv_strv_free(&j->lines);
	free(j);
}

void sv_logview_cmd(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	json_t *lines = json_object_get(args, "lines");
	bool follow = json_is_true(json_object_get(args, "follow"));
	struct tail_job *j;
	char path[4200];
	int rc = sv_guest_log_path(g, path, sizeof(path));
	if (rc < 0) {
		sv_reply_err(req, "NotFound", "%s: %s", g->name, rc == -ENOENT
		             ? "qsupd keeps no guest logs (no log dir)" : "log path too long");
		return;
	}
	if (follow && (nfollowers >= SV_LOGVIEW_MAX_FOLLOW ||
	               peer_followers(req->route, req->peer) >= SV_LOGVIEW_MAX_FOLLOW_PEER)) {
		sv_reply_err(req, "InvalidState", "%s: qsupd follows at most %d logs at once, %d "
		             "per connection", g->name, SV_LOGVIEW_MAX_FOLLOW,
		             SV_LOGVIEW_MAX_FOLLOW_PEER);
		return;
	}
	if (!(j = calloc(1, sizeof(*j)))) {
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	j->req = req;
	j->route = req->route;
	j->peer = req->peer;
	j->fd = -1;
	j->nlines = lines ? (size_t)json_integer_value(lines) : SV_LOGVIEW_LINES;
	j->follow = follow;
	snprintf(j->name, sizeof(j->name), "%s", g->name);
	snprintf(j->path, sizeof(j->path), "%s", path);
	j->work.data = j;
	if (uv_queue_work(g->env->loop, &j->work, tail_work, tail_done) < 0) {
		sv_reply_err(req, "GenericError", "out of memory");
		free(j);
	}
}
