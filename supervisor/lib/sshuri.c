/* ssh:// URIs, the remote command's quoting, the ssh argv: see sshuri.h. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sshuri.h"

bool sv_ssh_uri_is(const char *s)
{
	return s && !strncmp(s, "ssh://", 6);
}

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? tolower(c) - 'a' + 10 : -1;
}

int sv_ssh_uri_parse(const char *uri, struct sv_ssh_uri *u, struct sv_error *err)
{
	const char *p, *at, *slash, *end;
	size_t n;

	memset(u, 0, sizeof(*u));
	if (!sv_ssh_uri_is(uri))
		return sv_error_set(err, -EINVAL, "'%.200s' is not an ssh://[USER@]HOST[:PORT]"
		                    "[/SOCKET] URI", uri ? uri : "");
	p = uri + 6;
	slash = strchr(p, '/');
	end = slash ? slash : p + strlen(p);
	at = memchr(p, '@', (size_t)(end - p));
	if (at) {
		n = (size_t)(at - p);
		if (n == 0 || n >= sizeof(u->user) || *p == '-')
			return sv_error_set(err, -EINVAL, "%.200s: a bad user name", uri);
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)p[i]) && !strchr("._-$", p[i]))
				return sv_error_set(err, -EINVAL, "%.200s: a bad user name", uri);
		memcpy(u->user, p, n);
		p = at + 1;
	}
	const char *hend, *port = NULL;
	if (*p == '[') {
		hend = memchr(p, ']', (size_t)(end - p));
		if (!hend)
			return sv_error_set(err, -EINVAL, "%.200s: no ']' after the IPv6 address", uri);
		p++;
		if (hend + 1 < end) {
			if (hend[1] != ':')
				return sv_error_set(err, -EINVAL, "%.200s: a bad host", uri);
			port = hend + 2;
		}
	} else {
		hend = memchr(p, ':', (size_t)(end - p));
		if (hend)
			port = hend + 1;
		else
			hend = end;
	}
	n = (size_t)(hend - p);
	if (n == 0)
		return sv_error_set(err, -EINVAL, "%.200s: no host", uri);
	if (n >= sizeof(u->host) || *p == '-')
		return sv_error_set(err, -EINVAL, "%.200s: a bad host", uri);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f || strchr("@/'\"\\", p[i]))
			return sv_error_set(err, -EINVAL, "%.200s: a bad host", uri);
	memcpy(u->host, p, n);
	if (port) {
		long v = 0;
		if (port == end)
			return sv_error_set(err, -EINVAL, "%.200s: an empty port", uri);
		for (const char *q = port; q < end; q++) {
			if (!isdigit((unsigned char)*q) || (v = v * 10 + (*q - '0')) > 65535)
				return sv_error_set(err, -EINVAL, "%.200s: the port must be a "
				                    "number from 1 to 65535", uri);
		}
		if (v < 1)
			return sv_error_set(err, -EINVAL, "%.200s: the port must be a number from "
			                    "1 to 65535", uri);
		u->port = (int)v;
	}
	if (!slash || !slash[1])
		return 0;   /* no path, or "/": the remote default socket */
	n = 0;
	for (const char *q = slash; *q; q++) {
		char c = *q;
		if (c == '%') {
			int hi = hexval((unsigned char)q[1]), lo = hi < 0 ? -1 : hexval((unsigned char)q[2]);
			if (hi < 0 || lo < 0)
				return sv_error_set(err, -EINVAL, "%.200s: a bad %%XX in the path", uri);
			c = (char)(hi * 16 + lo);
			q += 2;
			if (!c)
				return sv_error_set(err, -EINVAL, "%.200s: %%00 in the path", uri);
		}
		if (n + 1 >= sizeof(u->path))
			return sv_error_set(err, -ENAMETOOLONG, "%.200s: the socket path is too long "
			                    "for a unix socket (at most %d bytes)", uri,
			                    SV_SOCK_PATH_MAX - 1);
		u->path[n++] = c;
	}
	return 0;
}

char *sv_shell_quote(const char *const *words)
{
	size_t n = 1;
	for (size_t i = 0; words[i]; i++) {
		n += 3;   /* the quotes and a space */
		for (const char *p = words[i]; *p; p++)
			n += *p == '\'' ? 4 : 1;
	}
	char *out = malloc(n), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; words[i]; i++) {
		if (i)
			*o++ = ' ';
		*o++ = '\'';
		for (const char *p = words[i]; *p; p++) {
			if (*p == '\'') {
				memcpy(o, "'\\''", 4);
				o += 4;
			} else {
				*o++ = *p;
			}
		}
		*o++ = '\'';
	}
	*o = '\0';
	return out;
}

void sv_ssh_argv_free(char **argv)
{
	if (!argv)
		return;
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	free(argv);
}

char **sv_ssh_argv(const char *ssh_prog, const char *config, const struct sv_ssh_uri *u,
                   const char *const *remote)
{
	char port[16];
	const char *fixed[20];
	size_t n = 0;

	fixed[n++] = ssh_prog ? ssh_prog : "ssh";
	if (config && *config) {
		fixed[n++] = "-F";
		fixed[n++] = config;
	}
	/* never a prompt (a daemon has no terminal), no pty, no escape char:
	 * the bytes are JSON or a console's, and go through untouched */
	fixed[n++] = "-o";
	fixed[n++] = "BatchMode=yes";
	fixed[n++] = "-T";
	fixed[n++] = "-e";
	fixed[n++] = "none";
	if (u->port) {
		snprintf(port, sizeof(port), "%d", u->port);
		fixed[n++] = "-p";
		fixed[n++] = port;
	}
	if (u->user[0]) {
		fixed[n++] = "-l";
		fixed[n++] = u->user;
	}
	fixed[n++] = "--";
	fixed[n++] = u->host;
	char **argv = calloc(n + 2, sizeof(*argv));
	if (!argv)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(argv[i] = strdup(fixed[i]))) {
			sv_ssh_argv_free(argv);
			return NULL;
		}
	if (!(argv[n] = sv_shell_quote(remote))) {
		sv_ssh_argv_free(argv);
		return NULL;
	}
	return argv;
}

enum sv_ssh_fail sv_ssh_classify(const char *err)
{
	static const struct { const char *text; enum sv_ssh_fail f; } known[] = {
		{ "Host key verification failed", SV_SSH_HOSTKEY },
		{ "REMOTE HOST IDENTIFICATION HAS CHANGED", SV_SSH_HOSTKEY },
		{ "host key for", SV_SSH_HOSTKEY },
		{ "Permission denied", SV_SSH_AUTH },
		{ "Too many authentication failures", SV_SSH_AUTH },
		{ "Connection refused", SV_SSH_NETWORK },
		{ "No route to host", SV_SSH_NETWORK },
		{ "Network is unreachable", SV_SSH_NETWORK },
		{ "Connection timed out", SV_SSH_NETWORK },
		{ "Operation timed out", SV_SSH_NETWORK },
		{ "Could not resolve hostname", SV_SSH_NETWORK },
		{ "Name or service not known", SV_SSH_NETWORK },
		{ "Temporary failure in name resolution", SV_SSH_NETWORK },
		{ "kex_exchange_identification", SV_SSH_NETWORK },
		{ "Connection closed by", SV_SSH_NETWORK },
		{ "Connection reset by", SV_SSH_NETWORK },
	};
	for (size_t i = 0; err && i < sizeof(known) / sizeof(known[0]); i++)
		if (strstr(err, known[i].text))
			return known[i].f;
	return SV_SSH_OTHER;
}

const char *sv_ssh_fail_name(enum sv_ssh_fail f)
{
	switch (f) {
	case SV_SSH_HOSTKEY: return "host key verification failed";
	case SV_SSH_AUTH: return "authentication failed";
	case SV_SSH_NETWORK: return "cannot reach the host";
	default: return "ssh failed";
	}
}

char *sv_last_line(const char *text, char *buf, size_t size)
{
	const char *end = text ? text + strlen(text) : NULL, *start;

	buf[0] = '\0';
	while (end && end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	if (!end || end == text)
		return buf;
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	snprintf(buf, size, "%.*s", (int)(end - start), start);
	return buf;
}
