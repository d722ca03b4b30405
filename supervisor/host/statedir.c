/* The state dir: see statedir.h. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "statedir.h"
#include "sysutil.h"

int sv_statedir_prepare(const char *dir, struct sv_error *err)
{
	int r = sv_mkdir_p(dir, 0700);
	if (r < 0)
		return sv_error_set(err, r, "state dir %s: %s", dir, strerror(-r));
	return 0;
}

/* Write len bytes to path atomically: a temp file, fsync, rename. */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	int r = write(fd, data, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -(errno ? errno : EIO);
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int sv_statedir_host_key(const char *dir, uint8_t key[SV_HOST_KEY_LEN], struct sv_error *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/host.key", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		ssize_t n = read(fd, key, SV_HOST_KEY_LEN);
		close(fd);
		if (n == SV_HOST_KEY_LEN)
			return 0;
		return sv_error_set(err, -EINVAL, "%s: not a key of %d bytes; remove it to "
		                    "have a new one made (older save files then no longer "
		                    "restore)", path, SV_HOST_KEY_LEN);
	}
	if (errno != ENOENT)
		return sv_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (getrandom(key, SV_HOST_KEY_LEN, 0) != SV_HOST_KEY_LEN)
		return sv_error_set(err, -errno, "getrandom: %s", strerror(errno));
	int r = write_atomic(path, key, SV_HOST_KEY_LEN, 0600);
	if (r < 0)
		return sv_error_set(err, r, "%s: %s", path, strerror(-r));
	return 0;
}

void sv_statedir_images_path(const char *dir, const char *name, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s.images", dir, name);
}

static json_t *read_images(const char *dir, const char *name)
{
	char path[PATH_MAX];
	sv_statedir_images_path(dir, name, path, sizeof(path));
	json_t *list = json_load_file(path, 0, NULL);
	if (!json_is_array(list)) {
		json_decref(list);
		list = json_array();
	}
	return list;
}

bool sv_statedir_image_created(const char *dir, const char *name, const char *path)
{
	json_t *list = read_images(dir, name), *e;
	size_t i;
	bool found = false;
	json_array_foreach(list, i, e)
		found |= !strcmp(sv_jstr(e, "path", ""), path);
	json_decref(list);
	return found;
}

int sv_statedir_image_record(const char *dir, const char *name, const char *path,
                             struct sv_error *err)
{
	char file[PATH_MAX];
	json_t *list = read_images(dir, name);
	json_array_append_new(list, json_pack("{s:s, s:I}", "path", path, "created",
	                                      (json_int_t)time(NULL)));
	char *text = json_dumps(list, JSON_INDENT(1));
	json_decref(list);
	if (!text)
		return sv_error_set(err, -ENOMEM, "out of memory");
	sv_statedir_images_path(dir, name, file, sizeof(file));
	int r = write_atomic(file, text, strlen(text), 0600);
	free(text);
	if (r < 0)
		return sv_error_set(err, r, "%s: %s", file, strerror(-r));
	return 0;
}

int sv_state_file_write(const char *rundir, const char *tmpname, const char *text)
{
	char path[4200], tmp[4200];
	size_t len = strlen(text);
	int err = 0;
	snprintf(path, sizeof(path), "%s/state.json", rundir);
	snprintf(tmp, sizeof(tmp), "%s/%s", rundir, tmpname);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0 && errno == ENOENT && (mkdir(rundir, 0755) == 0 || errno == EEXIST))
		/* a guest never started yet has no run dir (launch.c makes it too) */
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return errno;
	errno = 0;
	ssize_t n = write(fd, text, len);
	if (n != (ssize_t)len)
		err = n < 0 ? errno : ENOSPC;   /* a short write: the disk is full */
	if (close(fd) < 0 && !err)
		err = errno;
	if (!err && rename(tmp, path) < 0)
		err = errno;
	if (err)
		unlink(tmp);
	return err;
}
