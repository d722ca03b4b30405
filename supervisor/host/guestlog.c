/* A guest's log file: see guestlog.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guestlog.h"
#include "log.h"

int sv_glog_path(const char *dir, const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s.log", dir, name);
	return n < 0 || (size_t)n + 2 >= size ? -ENAMETOOLONG : 0;   /* room for ".1" */
}

int sv_glog_open_run(const char *path, uint64_t max, bool *rotated, struct sv_error *err)
{
	char old[4200];
	struct stat st;
	*rotated = false;
	if (max > 0 && lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size > max) {
		snprintf(old, sizeof(old), "%s.1", path);
		if (rename(path, old) < 0)
			return sv_error_set(err, -errno, "%s: cannot rotate it to %s: %s", path, old,
			                    strerror(errno));
		*rotated = true;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
	              0640);
	if (fd < 0)
		return sv_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return sv_error_set(err, -EINVAL, "%s: not a regular file", path);
	}
	return fd;
}

size_t sv_glog_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
	char now[40];
	int head = snprintf(buf, size, "%s" SV_GLOG_MARK, sv_log_time(now, sizeof(now), true));
	if (head < 0 || (size_t)head + 2 > size) {
		buf[0] = '\0';
		return 0;
	}
	int n = vsnprintf(buf + head, size - (size_t)head - 1, fmt, ap);
	size_t len = (size_t)head + (n < 0 ? 0 : (size_t)n < size - (size_t)head - 1 ? (size_t)n
	                                             : size - (size_t)head - 2);
	for (size_t i = (size_t)head; i < len; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[len++] = '\n';
	buf[len] = '\0';
	return len;
}

int sv_glog_append(int fd, const char *path, const char *line, size_t len)
{
	int own = -1;
	if (fd < 0) {
		own = fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
		                O_NOCTTY, 0640);
		if (fd < 0)
			return -errno;
	}
	ssize_t w = write(fd, line, len);
	int rc = w < 0 ? -errno : (size_t)w < len ? -ENOSPC : 0;
	if (own >= 0)
		close(own);
	return rc;
}

bool sv_glog_is_ours(const char *line, size_t len)
{
	/* "2026-11-30T10:36:23.123+01:00 qsup: ": the mark follows the first
	 * word, which is a time stamp. */
	size_t sp = 0;
	while (sp < len && sp < 40 && line[sp] != ' ')
		sp++;
	size_t m = sizeof(SV_GLOG_MARK) - 1;
	return sp >= 19 && sp + m <= len && line[4] == '-' && line[10] == 'T' &&
	       memcmp(line + sp, SV_GLOG_MARK, m) == 0;
}

/* One line of len bytes (no newline) cleaned into a new string of out. */
static int push_line(struct sv_strv *out, const char *p, size_t len)
{
	if (len > 0 && p[len - 1] == '\r')
		len--;
	char *s = malloc(len + 1);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++)
		s[i] = p[i] ? p[i] : '?';
	s[len] = '\0';
	sv_utf8_scrub(s);
	return sv_strv_push_take(out, s);
}

size_t sv_glog_split(const char *text, size_t len, struct sv_strv *out)
{
	size_t used = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] != '\n')
			continue;
		if (push_line(out, text + used, i - used) < 0)
			break;
		used = i + 1;
	}
	return used;
}

static int read_range(int fd, char *buf, int64_t at, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, (off_t)at + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;   /* the file shrank meanwhile: what there is */
		got += (size_t)r;
	}
	return (int)got;
}

/* The lines of buf[0..n) that count, as (start, length) pairs in a ring
 * of cap: the last cap of them. whole says whether buf[0] starts a line.
 * Returns how many there were in all (the ring holds the last cap). */
struct span { size_t at, len; };

static size_t spans(const char *buf, size_t n, bool whole, bool partial, bool ours,
                    struct span *v, size_t cap, size_t *tail_end)
{
	size_t k = 0, at = 0;
	*tail_end = 0;
	for (size_t i = 0; i <= n; i++) {
		bool nl = i < n && buf[i] == '\n';
		if (!nl && !(i == n && partial && i > at))
			continue;
		if (nl)
			*tail_end = i + 1;
		bool cut = !whole && at == 0;   /* began before what was read */
		if (!cut && (ours || !sv_glog_is_ours(buf + at, i - at)))
			v[k++ % cap] = (struct span){ at, i - at };
		at = i + 1;
	}
	return k;
}

int sv_glog_tail(int fd, int64_t from, int64_t end, size_t nlines, size_t maxbytes,
                 bool partial, bool ours, struct sv_strv *out, int64_t *complete)
{
	if (complete)
		*complete = from;
	if (from < 0)
		from = 0;
	if (end <= from || nlines == 0)
		return 0;
	/* Read more and more of the end until it holds enough lines. */
	size_t want = 65536;
	for (;;) {
		if (want > maxbytes)
			want = maxbytes;
		int64_t start = end - from > (int64_t)want ? end - (int64_t)want : from;
		size_t n = (size_t)(end - start);
		char *buf = malloc(n + 1);
		struct span *v = calloc(nlines, sizeof(*v));
		if (!buf || !v) {
			free(buf);
			free(v);
			return -ENOMEM;
		}
		int got = read_range(fd, buf, start, n);
		if (got < 0) {
			free(buf);
			free(v);
			return got;
		}
		size_t tail_end = 0;
		size_t k = spans(buf, (size_t)got, start == from, partial, ours, v, nlines,
		                 &tail_end);
		bool done = k >= nlines || start == from || want >= maxbytes;
		if (done) {
			size_t first = k > nlines ? k - nlines : 0;
			for (size_t i = first; i < k; i++)
				if (push_line(out, buf + v[i % nlines].at, v[i % nlines].len) < 0)
					break;
			if (complete)
				*complete = start + (int64_t)tail_end;
		}
		free(buf);
		free(v);
		if (done)
			return 0;
		want *= 4;
	}
}
