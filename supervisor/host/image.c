/* Backing chains of disk images: see image.h. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "profile.h"

#define QCOW2_MAGIC 0x514649fbu
#define EXT_END 0u
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_DATA_FILE 0x44415441u
#define INCOMPAT_DATA_FILE (1ull << 2)

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* The backing-format extension, if any, into fmt; checks every extension
 * fits. Returns 0 or -EINVAL. */
static int read_extensions(const uint8_t *buf, size_t len, size_t off, char *fmt,
                           size_t fsize, struct sv_error *err)
{
	fmt[0] = '\0';
	for (;;) {
		if (off > len || len - off < 8)
			return sv_error_set(err, -EINVAL, "header extensions run past the "
			                    "first %zu bytes", len);
		uint32_t type = be32(buf + off), n = be32(buf + off + 4);
		off += 8;
		if (type == EXT_END)
			return 0;
		if (n > len - off)
			return sv_error_set(err, -EINVAL, "header extension 0x%x runs past the "
			                    "first %zu bytes", type, len);
		if (type == EXT_DATA_FILE)
			return sv_error_set(err, -EOPNOTSUPP, "it has an external data file, "
			                    "which qsup does not hand to QEMU");
		if (type == EXT_BACKING_FORMAT) {
			if (n == 0 || n >= fsize)
				return sv_error_set(err, -EINVAL, "its backing format name is "
				                    "empty or too long");
			memcpy(fmt, buf + off, n);
			fmt[n] = '\0';
		}
		off += (n + 7u) & ~7u;
	}
}

int sv_qcow2_backing(const uint8_t *buf, size_t len, char *name, size_t nsize, char *fmt,
                     size_t fsize, struct sv_error *err)
{
	name[0] = fmt[0] = '\0';
	if (len < 72 || be32(buf) != QCOW2_MAGIC)
		return sv_error_set(err, -EINVAL, "not a qcow2 image");
	uint32_t version = be32(buf + 4);
	if (version != 2 && version != 3)
		return sv_error_set(err, -EINVAL, "qcow2 version %u, not 2 or 3", version);
	uint64_t boff = be64(buf + 8);
	uint32_t bsize = be32(buf + 16);
	size_t hlen = 72;
	if (version == 3) {
		if (len < 104)
			return sv_error_set(err, -EINVAL, "a truncated qcow2 header");
		if (be64(buf + 72) & INCOMPAT_DATA_FILE)
			return sv_error_set(err, -EOPNOTSUPP, "it has an external data file, "
			                    "which qsup does not hand to QEMU");
		hlen = be32(buf + 100);
		if (hlen < 104 || hlen > len)
			return sv_error_set(err, -EINVAL, "a qcow2 header length of %zu", hlen);
	}
	int r = read_extensions(buf, len, hlen, fmt, fsize, err);
	if (r < 0)
		return r;
	if (boff == 0 || bsize == 0)
		return 0;
	if (bsize >= nsize || boff > len || bsize > len - boff)
		return sv_error_set(err, -EINVAL, "its backing file name lies beyond the "
		                    "first %zu bytes or is too long", len);
	memcpy(name, buf + boff, bsize);
	name[bsize] = '\0';
	if (strlen(name) != bsize || !sv_text_clean(name))
		return sv_error_set(err, -EINVAL, "its backing file name holds control "
		                    "characters");
	if (!fmt[0])
		return sv_error_set(err, -EINVAL, "its backing file %s has no recorded "
		                    "format, and qsup never probes one (qemu-img rebase -u "
		                    "-F FORMAT -b NAME IMAGE records it)", name);
	if (!sv_format_valid(fmt))
		return sv_error_set(err, -EINVAL, "its backing file %s has format %s, "
		                    "which qsup does not use", name, fmt);
	return 1;
}

/* The header of the image at path into buf; its length, or -errno. */
static ssize_t read_header(const char *path, uint8_t *buf, struct sv_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return sv_error_set(err, -errno, "%s", strerror(errno));
	struct stat st;
	ssize_t n = -EINVAL;
	if (fstat(fd, &st) < 0)
		n = sv_error_set(err, -errno, "%s", strerror(errno));
	else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		n = sv_error_set(err, -EINVAL, "not a regular file or block device");
	else if ((n = pread(fd, buf, SV_QCOW2_HEADER_MAX, 0)) < 0)
		n = sv_error_set(err, -errno, "%s", strerror(errno));
	close(fd);
	return n;
}

/* name (from the image at path) as an absolute path: relative names are
 * taken from the image's directory, as QEMU does. */
static int resolve(const char *path, const char *name, char **out, struct sv_error *err)
{
	char *copy = strdup(path);
	const char *why = NULL;
	int r = copy ? sv_path_resolve(dirname(copy), name, out, &why) : -ENOMEM;
	free(copy);
	if (r == -EINVAL)
		return sv_error_set(err, r, "its backing file %s is refused: %s", name, why);
	if (r < 0)
		return sv_error_set(err, r, "its backing file %s: %s", name, strerror(-r));
	return 0;
}

int sv_image_chain(const char *path, const char *fmt, struct sv_chain *out,
                   struct sv_error *err)
{
	uint8_t *buf = malloc(SV_QCOW2_HEADER_MAX);
	char name[1024], bfmt[32];
	const char *cur = path, *curfmt = fmt;
	struct sv_error e = { 0 };
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (!buf)
		return sv_error_set(err, -ENOMEM, "out of memory");
	while (strcmp(curfmt, "qcow2") == 0) {
		ssize_t n = read_header(cur, buf, &e);
		if (n >= 0)
			r = sv_qcow2_backing(buf, (size_t)n, name, sizeof(name), bfmt, sizeof(bfmt), &e);
		else
			r = (int)n;
		if (r <= 0)
			break;
		if (out->n == SV_CHAIN_MAX) {
			r = sv_error_set(&e, -ELOOP, "its backing chain is deeper than %d layers",
			                 SV_CHAIN_MAX);
			break;
		}
		struct sv_layer *l = &out->layers[out->n];
		if ((r = resolve(cur, name, &l->path, &e)) < 0)
			break;
		if (!(l->format = strdup(bfmt))) {
			free(l->path);
			r = sv_error_set(&e, -ENOMEM, "out of memory");
			break;
		}
		out->n++;
		bool loop = !strcmp(path, l->path);
		for (size_t i = 0; i + 1 < out->n; i++)
			loop |= !strcmp(out->layers[i].path, l->path);
		if (loop) {
			r = sv_error_set(&e, -ELOOP, "its backing chain loops at %s", l->path);
			break;
		}
		cur = l->path;
		curfmt = l->format;
	}
	free(buf);
	if (r < 0) {
		sv_error_set(err, r, "%s: %s", cur, e.msg);
		sv_chain_free(out);
		return r;
	}
	return 0;
}
