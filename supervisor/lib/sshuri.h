/*
 * Reaching a qsupd on another host through the system's ssh client, pure
 * parts shared by qsupctl (-c ssh://...) and qsupd (migrate --to ssh://...):
 * the URI, the one place where the remote command is quoted for the remote
 * user's shell, the ssh argv, and what ssh's error output means.
 */
#ifndef SV_SSHURI_H
#define SV_SSHURI_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* ssh://[USER@]HOST[:PORT][/PATH]: port 0 when not given (ssh's default);
 * path "" when not given (the remote qsupctl's default socket). */
struct sv_ssh_uri {
	char user[64];
	char host[256];
	int port;
	char path[SV_SOCK_PATH_MAX];
};

/* True if s is an ssh:// URI (parse it with sv_ssh_uri_parse). */
bool sv_ssh_uri_is(const char *s);

/* Parse uri. The host is a name, an address, or an IPv6 address in
 * brackets; it may not start with '-' nor hold spaces or control bytes.
 * %XX in the path is decoded. Returns 0, or -EINVAL / -ENAMETOOLONG with
 * err set. */
int sv_ssh_uri_parse(const char *uri, struct sv_ssh_uri *u, struct sv_error *err);

/* The words joined with spaces, each in single quotes (' as '\''), so that
 * the remote user's shell, which ssh always runs the command through,
 * gives the remote program exactly these words. Malloc'd, or NULL. */
char *sv_shell_quote(const char *const *words);

/* The argv of the ssh client for u running remote (NULL-terminated words,
 * quoted here): ssh [-F config] -o BatchMode=yes -T -e none
 * [-p PORT] [-l USER] -- HOST 'WORD' 'WORD'...  ssh_prog NULL: "ssh".
 * Malloc'd, NULL-terminated; free with sv_ssh_argv_free(). NULL on
 * ENOMEM. */
char **sv_ssh_argv(const char *ssh_prog, const char *config, const struct sv_ssh_uri *u,
                   const char *const *remote);
void sv_ssh_argv_free(char **argv);

/* What went wrong, from what ssh wrote on stderr. */
enum sv_ssh_fail {
	SV_SSH_OTHER = 0,       /* not recognised as ssh's own failure */
	SV_SSH_HOSTKEY,         /* host key unknown, changed or refused */
	SV_SSH_AUTH,            /* permission denied: no key (or password) accepted */
	SV_SSH_NETWORK,         /* refused, unreachable, unknown name, timed out */
};
enum sv_ssh_fail sv_ssh_classify(const char *err);
/* "host key verification failed", ... (for messages). */
const char *sv_ssh_fail_name(enum sv_ssh_fail f);

/* The last non-empty line of text (at most size-1 bytes, without the
 * newline) into buf; "" when there is none. Returns buf. */
char *sv_last_line(const char *text, char *buf, size_t size);

#endif
