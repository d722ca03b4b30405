/* Save files: see savefile.h. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hmac.h"
#include "savefile.h"

#define MAC_HEX (SV_SHA256_LEN * 2)

/* ---- the header (pure) ---- */

static void mac_of(const uint8_t key[SV_SAVE_KEY_LEN], const char *json, size_t n,
                   char hex[MAC_HEX + 1])
{
	size_t m = strlen(SV_SAVE_MAGIC);
	char *msg = malloc(m + n);
	uint8_t mac[SV_SHA256_LEN];
	if (!msg) {
		memset(hex, '0', MAC_HEX);   /* never verifies: a MAC is not all zeros */
		hex[MAC_HEX] = '\0';
		return;
	}
	memcpy(msg, SV_SAVE_MAGIC, m);
	memcpy(msg + m, json, n);
	sv_hmac_sha256(key, SV_SAVE_KEY_LEN, msg, m + n, mac);
	free(msg);
	sv_hex(mac, sizeof(mac), hex);
}

char *sv_savefile_header(const uint8_t key[SV_SAVE_KEY_LEN], json_t *h)
{
	char hex[MAC_HEX + 1], *line = NULL;
	char *text = json_dumps(h, JSON_COMPACT);
	if (!text)
		return NULL;
	mac_of(key, text, strlen(text), hex);
	if (asprintf(&line, "%s%s %s\n", SV_SAVE_MAGIC, hex, text) < 0)
		line = NULL;
	free(text);
	return line;
}

json_t *sv_savefile_parse(const uint8_t key[SV_SAVE_KEY_LEN], const char *buf, size_t len,
                          size_t *hlen, char *why, size_t wsize)
{
	size_t m = strlen(SV_SAVE_MAGIC);
	const char *nl = memchr(buf, '\n', len < SV_SAVE_HEADER_MAX ? len : SV_SAVE_HEADER_MAX);
	char hex[MAC_HEX + 1];
	bool ours = len >= m && !memcmp(buf, SV_SAVE_MAGIC, m);
	if (len >= 11 && !memcmp(buf, "QSUP-SAVE-", 10) && !ours) {
		snprintf(why, wsize, "written by another version of qsupd (%.11s), whose save "
		         "files this one cannot authenticate", buf);
		return NULL;
	}
	/* The newline must come after the MAC and its space: one earlier
	 * would make the JSON's length negative. */
	if (!nl || !ours || (size_t)(nl - buf) < m + MAC_HEX + 1 || buf[m + MAC_HEX] != ' ') {
		snprintf(why, wsize, "not a file written by qsupd save");
		return NULL;
	}
	const char *json = buf + m + MAC_HEX + 1;
	size_t n = (size_t)(nl - json);
	mac_of(key, json, n, hex);
	if (!sv_digest_equal((const uint8_t *)hex, (const uint8_t *)buf + m, MAC_HEX)) {
		snprintf(why, wsize, "its header does not carry this host's signature: it was "
		         "written by another host's qsupd, or altered; restore trusts only "
		         "files this host saved");
		return NULL;
	}
	json_t *h = json_loadb(json, n, 0, NULL);
	if (!json_is_object(h)) {
		json_decref(h);
		snprintf(why, wsize, "its header is not a JSON object");
		return NULL;
	}
	*hlen = (size_t)(nl - buf) + 1;
	return h;
}

/* ---- off the loop ---- */

struct job {
	uv_work_t work;
	char path[PATH_MAX], tmp[PATH_MAX + 32];
	char *header;
	int fd;
	char why[PATH_MAX + 256];
	char *buf;
	size_t len;
	sv_save_opened_fn opened;
	sv_save_done_fn committed;
	sv_restore_opened_fn restored;
	void *arg;
};

static struct job *job_new(const char *path, void *arg)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	snprintf(j->path, sizeof(j->path), "%s", path ? path : "");
	j->fd = -1;
	j->arg = arg;
	j->work.data = j;
	return j;
}

static void job_free(struct job *j)
{
	free(j->header);
	free(j->buf);
	free(j);
}

/* An existing target must be a regular file that a save wrote: never a
 * link, a FIFO, a device, or a file of something else. */
static int check_target(struct job *j)
{
	struct stat st;
	char head[16] = "";
	if (lstat(j->path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISREG(st.st_mode)) {
		snprintf(j->why, sizeof(j->why), "%s exists and is not a regular file (%s); "
		         "save never writes through it", j->path,
		         S_ISLNK(st.st_mode) ? "a symbolic link" : S_ISFIFO(st.st_mode) ? "a FIFO"
		         : S_ISDIR(st.st_mode) ? "a directory" : "a device or socket");
		return -EEXIST;
	}
	int fd = open(j->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	ssize_t n = fd >= 0 ? read(fd, head, 10) : -1;
	if (fd >= 0)
		close(fd);
	if (n != 10 || memcmp(head, "QSUP-SAVE-", 10)) {
		snprintf(j->why, sizeof(j->why), "%s exists and is not a qsupd save file; "
		         "remove it first if it must go", j->path);
		return -EEXIST;
	}
	return 0;
}

static void create_work(uv_work_t *w)
{
	struct job *j = w->data;
	char copy[PATH_MAX];
	int r = check_target(j);
	if (r < 0) {
		if (!j->why[0])
			snprintf(j->why, sizeof(j->why), "%s: %s", j->path, strerror(-r));
		return;
	}
	snprintf(copy, sizeof(copy), "%s", j->path);
	char *base = strrchr(copy, '/');
	*base = '\0';
	snprintf(j->tmp, sizeof(j->tmp), "%s/.%s.qsup-XXXXXX", copy[0] ? copy : "/", base + 1);
	j->fd = mkostemp(j->tmp, O_CLOEXEC);   /* 0600, O_EXCL: a new inode */
	if (j->fd < 0) {
		snprintf(j->why, sizeof(j->why), "%s: %s", j->path, strerror(errno));
		return;
	}
	size_t n = strlen(j->header);
	ssize_t got = write(j->fd, j->header, n);
	if (got != (ssize_t)n) {
		snprintf(j->why, sizeof(j->why), "%s: writing: %s", j->tmp,
		         got < 0 ? strerror(errno) : "short write (disk full?)");
		close(j->fd);
		unlink(j->tmp);
		j->fd = -1;
	}
}

static void create_done(uv_work_t *w, int status)
{
	struct job *j = w->data;
	(void)status;
	j->opened(j->arg, j->fd, j->fd >= 0 ? j->tmp : NULL, j->fd >= 0 ? NULL : j->why);
	job_free(j);
}

int sv_savefile_create(uv_loop_t *loop, const char *path, char *header,
                       sv_save_opened_fn done, void *arg)
{
	struct job *j = path[0] == '/' ? job_new(path, arg) : NULL;
	if (!j) {
		free(header);
		return -ENOMEM;
	}
	j->header = header;
	j->opened = done;
	int rc = uv_queue_work(loop, &j->work, create_work, create_done);
	if (rc < 0)
		job_free(j);
	return rc;
}

static void commit_work(uv_work_t *w)
{
	struct job *j = w->data;
	if (fsync(j->fd) < 0)
		snprintf(j->why, sizeof(j->why), "%s: fsync: %s", j->tmp, strerror(errno));
	if (close(j->fd) < 0 && !j->why[0])
		snprintf(j->why, sizeof(j->why), "%s: %s", j->tmp, strerror(errno));
	j->fd = -1;
	if (!j->why[0] && check_target(j) < 0 && !j->why[0])
		snprintf(j->why, sizeof(j->why), "%s: %s", j->path, strerror(errno));
	if (!j->why[0] && rename(j->tmp, j->path) < 0)
		snprintf(j->why, sizeof(j->why), "%s: %s", j->path, strerror(errno));
	if (j->why[0])
		unlink(j->tmp);
}

static void commit_done(uv_work_t *w, int status)
{
	struct job *j = w->data;
	(void)status;
	if (j->committed)
		j->committed(j->arg, j->why[0] ? j->why : NULL);
	job_free(j);
}

int sv_savefile_commit(uv_loop_t *loop, int fd, const char *tmp, const char *path,
                       sv_save_done_fn done, void *arg)
{
	struct job *j = job_new(path, arg);
	if (!j) {
		close(fd);
		return -ENOMEM;
	}
	j->fd = fd;
	snprintf(j->tmp, sizeof(j->tmp), "%s", tmp);
	j->committed = done;
	int rc = uv_queue_work(loop, &j->work, commit_work, commit_done);
	if (rc < 0) {
		close(fd);
		job_free(j);
	}
	return rc;
}

static void discard_work(uv_work_t *w)
{
	struct job *j = w->data;
	if (j->fd >= 0)
		close(j->fd);
	if (j->tmp[0])
		unlink(j->tmp);
}

void sv_savefile_discard(uv_loop_t *loop, int fd, const char *tmp)
{
	struct job *j = job_new(NULL, NULL);
	if (!j) {
		if (fd >= 0)
			close(fd);
		return;
	}
	j->fd = fd;
	snprintf(j->tmp, sizeof(j->tmp), "%s", tmp ? tmp : "");
	if (uv_queue_work(loop, &j->work, discard_work, commit_done) < 0) {
		discard_work(&j->work);
		job_free(j);
	}
}

static void open_work(uv_work_t *w)
{
	struct job *j = w->data;
	struct stat st;
	/* O_NONBLOCK: a FIFO planted there never blocks a thread. */
	j->fd = open(j->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (j->fd < 0) {
		snprintf(j->why, sizeof(j->why), "%s: %s", j->path, errno == ELOOP
		         ? "a symbolic link (restore does not follow one)" : strerror(errno));
		return;
	}
	if (fstat(j->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(j->why, sizeof(j->why), "%s: not a regular file", j->path);
		close(j->fd);
		j->fd = -1;
		return;
	}
	fcntl(j->fd, F_SETFL, fcntl(j->fd, F_GETFL) & ~O_NONBLOCK);
	j->buf = malloc(SV_SAVE_HEADER_MAX);
	ssize_t n = j->buf ? pread(j->fd, j->buf, SV_SAVE_HEADER_MAX, 0) : -1;
	if (n < 0) {
		snprintf(j->why, sizeof(j->why), "%s: %s", j->path, strerror(errno ? errno : ENOMEM));
		close(j->fd);
		j->fd = -1;
		return;
	}
	j->len = (size_t)n;
}

static void open_done(uv_work_t *w, int status)
{
	struct job *j = w->data;
	(void)status;
	j->restored(j->arg, j->fd, j->buf, j->len, j->fd >= 0 ? NULL : j->why);
	job_free(j);
}

int sv_savefile_open(uv_loop_t *loop, const char *path, sv_restore_opened_fn done,
                     void *arg)
{
	struct job *j = job_new(path, arg);
	if (!j)
		return -ENOMEM;
	j->restored = done;
	int rc = uv_queue_work(loop, &j->work, open_work, open_done);
	if (rc < 0)
		job_free(j);
	return rc;
}
