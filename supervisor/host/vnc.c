/* A guest's VNC display on the host: see vnc.h. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vnc.h"

/* Can port be bound on every address of ai (SO_REUSEADDR, as QEMU does)? */
static bool port_free(const struct addrinfo *ai, unsigned port)
{
	for (; ai; ai = ai->ai_next) {
		struct sockaddr_storage sa;
		int one = 1, fd;
		if (ai->ai_addrlen > sizeof(sa))
			continue;
		memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
		if (sa.ss_family == AF_INET)
			((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
		else if (sa.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
		else
			continue;
		fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return false;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (sa.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		bool ok = bind(fd, (struct sockaddr *)&sa, ai->ai_addrlen) == 0;
		close(fd);
		if (!ok)
			return false;
	}
	return true;
}

int sv_vnc_free_display(const char *listen, struct sv_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
	int r = getaddrinfo(listen, NULL, &hints, &ai);
	if (r != 0)
		return sv_error_set(err, -ENOENT, "[display] vnc-listen: %s: %s", listen,
		                    gai_strerror(r));
	for (unsigned n = 0; n < 100; n++)
		if (port_free(ai, 5900 + n)) {
			freeaddrinfo(ai);
			return (int)n;
		}
	freeaddrinfo(ai);
	return sv_error_set(err, -EADDRINUSE, "[display] vnc-display = auto: every TCP port "
	                    "from 5900 to 5999 on %s is in use", listen);
}

int sv_vnc_password_read(const char *path, char *pw, size_t size, struct sv_error *err)
{
	char buf[128];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return sv_error_set(err, -errno, "[display] password-file: cannot read %s: %s",
		                    path, strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return sv_error_set(err, -e, "[display] password-file: cannot read %s: %s",
		                    path, strerror(e));
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	size_t len = strlen(buf);
	bool printable = len > 0;
	for (size_t i = 0; i < len; i++)
		printable &= buf[i] > ' ' && buf[i] < 127;
	if (!printable || len > SV_VNC_PASSWORD_MAX || len >= size) {
		explicit_bzero(buf, sizeof(buf));
		return sv_error_set(err, -EINVAL, "[display] password-file: the first line of %s "
		                    "must hold the password: 1 to %d printable characters "
		                    "without spaces (VNC uses no more than %d)", path,
		                    SV_VNC_PASSWORD_MAX, SV_VNC_PASSWORD_MAX);
	}
	memcpy(pw, buf, len + 1);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

int sv_vnc_password_generate(const char *dir, char *pw, size_t size, struct sv_error *err)
{
	static const char set[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	unsigned char rnd[SV_VNC_PASSWORD_MAX];
	char path[4200], line[SV_VNC_PASSWORD_MAX + 2];
	if (size <= SV_VNC_PASSWORD_MAX)
		return sv_error_set(err, -EINVAL, "password buffer too small");
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return sv_error_set(err, -EIO, "cannot generate a VNC password: getrandom: %s",
		                    strerror(errno));
	for (size_t i = 0; i < sizeof(rnd); i++)
		pw[i] = set[rnd[i] % (sizeof(set) - 1)];
	pw[SV_VNC_PASSWORD_MAX] = '\0';
	snprintf(line, sizeof(line), "%s\n", pw);
	snprintf(path, sizeof(path), "%s/%s", dir, SV_VNC_PASSWORD_FILE);
	unlink(path);   /* a fresh file: never one that someone else made */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int e = errno;
	ssize_t w = fd >= 0 ? write(fd, line, strlen(line)) : -1;
	if (fd >= 0 && w < 0)
		e = errno;
	if (fd >= 0 && (fchmod(fd, 0600) < 0 || close(fd) < 0) && w >= 0) {
		e = errno;
		w = -1;
	}
	explicit_bzero(line, sizeof(line));
	explicit_bzero(rnd, sizeof(rnd));
	if (fd < 0 || w != (ssize_t)SV_VNC_PASSWORD_MAX + 1)
		return sv_error_set(err, -e, "cannot write the VNC password to %s: %s", path,
		                    strerror(e));
	return 0;
}
