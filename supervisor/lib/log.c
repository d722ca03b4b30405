/* qsupd's log: see log.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include "log.h"

/* journald's native socket: one datagram per entry (systemd's "Native
 * Journal Protocol"). Spoken here rather than through libsystemd, which
 * would load six more libraries into qsupd for this one call. */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

enum sink { SINK_UNDECIDED, SINK_STDERR, SINK_JOURNAL };

static enum sv_log_level min_level = SV_LOG_INFO;
static enum sink sink = SINK_UNDECIDED;
static bool journal_failed;         /* said so on stderr already */
static int journal_fd = -1;

static const char *const level_names[] = { "debug", "info", "warning", "error" };
static const int priorities[] = { 7, 6, 4, 3 };   /* LOG_DEBUG, LOG_INFO... */

void sv_log_set_level(enum sv_log_level level)
{
	min_level = level;
}

bool sv_log_enabled(enum sv_log_level level)
{
	return level >= min_level;
}

int sv_log_level_parse(const char *s, enum sv_log_level *out)
{
	static const struct { const char *name; enum sv_log_level level; } names[] = {
		{ "debug", SV_LOG_DEBUG }, { "info", SV_LOG_INFO },
		{ "warning", SV_LOG_WARN }, { "warn", SV_LOG_WARN }, { "error", SV_LOG_ERR },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

/* systemd's own test (sd_journal_stream_fd's counterpart): the service's
 * stderr is the journal's stream when $JOURNAL_STREAM names its device and
 * inode. A redirected stderr (2>file) no longer matches. */
bool sv_log_open(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;
	bool journal = js && sscanf(js, "%llu:%llu%c", &dev, &ino, &end) == 2 &&
	               fstat(STDERR_FILENO, &st) == 0 &&
	               (unsigned long long)st.st_dev == dev &&
	               (unsigned long long)st.st_ino == ino;
	sink = journal ? SINK_JOURNAL : SINK_STDERR;
	journal_failed = false;
	return journal;
}

char *sv_log_time(char *buf, size_t size, bool ms)
{
	struct timespec ts;
	struct tm tm;
	char date[32], zone[8];
	clock_gettime(CLOCK_REALTIME, &ts);
	if (!localtime_r(&ts.tv_sec, &tm) ||
	    !strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) ||
	    strftime(zone, sizeof(zone), "%z", &tm) != 5) {
		snprintf(buf, size, "%s", "0000-00-00T00:00:00");
		return buf;
	}
	if (ms)
		snprintf(buf, size, "%s.%03ld%.3s:%s", date, ts.tv_nsec / 1000000, zone, zone + 3);
	else
		snprintf(buf, size, "%s%.3s:%s", date, zone, zone + 3);
	return buf;
}

/* qsupd's pid, asked once (getpid(2) is a system call per line, and a
 * re-adoption logs two lines per guest); qsupd never forks but to exec. */
static long own_pid(void)
{
	static long pid;
	if (!pid)
		pid = (long)getpid();
	return pid;
}

/* One line on stderr with one write(2), so that lines never interleave. */
static void to_stderr(enum sv_log_level level, const char *guest, const char *msg)
{
	char now[40], line[1400];
	int n = snprintf(line, sizeof(line), "%s qsupd[%ld]: %s: %s%s%s\n",
	                 sv_log_time(now, sizeof(now), true), own_pid(),
	                 level_names[level], guest ? guest : "", guest ? ": " : "", msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {   /* cut, but still a line */
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;   /* nowhere left to report it */
}

/* fields ("KEY=value" each) as one entry: KEY=value and a newline, or,
 * for a value holding a newline, KEY, a newline, the value's length as 64
 * bits little-endian, the value and a newline. Returns 0 or -errno. */
static int journal_send(const struct iovec *fields, int n)
{
	struct iovec iov[5 * 8];
	unsigned char lens[8][8];
	int k = 0;
	if (n > 8)
		return -E2BIG;
	for (int i = 0; i < n; i++) {
		const char *f = fields[i].iov_base, *eq = memchr(f, '=', fields[i].iov_len);
		size_t key = eq ? (size_t)(eq - f) : fields[i].iov_len;
		size_t vlen = fields[i].iov_len - key - (eq ? 1 : 0);
		if (!eq || !memchr(eq + 1, '\n', vlen)) {
			iov[k++] = fields[i];
			iov[k++] = (struct iovec){ (char *)"\n", 1 };
			continue;
		}
		for (int b = 0; b < 8; b++)
			lens[i][b] = (unsigned char)((uint64_t)vlen >> (8 * b));
		iov[k++] = (struct iovec){ (char *)f, key };
		iov[k++] = (struct iovec){ (char *)"\n", 1 };
		iov[k++] = (struct iovec){ lens[i], 8 };
		iov[k++] = (struct iovec){ (char *)eq + 1, vlen };
		iov[k++] = (struct iovec){ (char *)"\n", 1 };
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", JOURNAL_SOCKET);
	if (journal_fd < 0 && (journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	struct msghdr mh = { .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = iov,
	                     .msg_iovlen = (size_t)k };
	return sendmsg(journal_fd, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* One journal entry. Returns 0 or a negative errno (no journal). */
static int to_journal(enum sv_log_level level, const char *guest, const char *msgid,
                      const char *msg)
{
	char text[1200], prio[16], gfield[128], id[64];
	struct iovec iov[5];
	int n = 0;
	snprintf(text, sizeof(text), "MESSAGE=%s%s%s", guest ? guest : "", guest ? ": " : "",
	         msg);
	snprintf(prio, sizeof(prio), "PRIORITY=%d", priorities[level]);
	iov[n++] = (struct iovec){ text, strlen(text) };
	iov[n++] = (struct iovec){ prio, strlen(prio) };
	iov[n++] = (struct iovec){ (char *)"SYSLOG_IDENTIFIER=qsupd", 23 };
	if (guest) {
		snprintf(gfield, sizeof(gfield), "QSUP_GUEST=%s", guest);
		iov[n++] = (struct iovec){ gfield, strlen(gfield) };
	}
	if (msgid) {
		snprintf(id, sizeof(id), "MESSAGE_ID=%s", msgid);
		iov[n++] = (struct iovec){ id, strlen(id) };
	}
	return journal_send(iov, n);
}

static void emit(enum sv_log_level level, const char *guest, const char *msgid,
                 const char *fmt, va_list ap)
{
	char msg[1024];
	if (level < min_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (sink == SINK_UNDECIDED)
		sv_log_open();
	if (sink == SINK_JOURNAL) {
		int rc = to_journal(level, guest, msgid, msg);
		if (rc >= 0)
			return;
		if (!journal_failed) {
			char why[160];
			journal_failed = true;
			snprintf(why, sizeof(why), "the journal refuses messages (%s); logging "
			         "to stderr instead", strerror(-rc));
			to_stderr(SV_LOG_WARN, NULL, why);
		}
	}
	to_stderr(level, guest, msg);
}

void sv_log(enum sv_log_level level, const char *guest, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(level, guest, NULL, fmt, ap);
	va_end(ap);
}

void sv_log_event(enum sv_log_level level, const char *guest, const char *msgid,
                  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(level, guest, msgid, fmt, ap);
	va_end(ap);
}
