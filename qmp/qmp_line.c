/*
 * libqmp: the command lines a client writes (qmp_line.h), and qmp_presend(),
 * which writes the first ones on a socket before any client has it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "qmp.h"
#include "qmp_line.h"

char *qmp_command_line(const char *command, json_t *args, uint64_t id, size_t *len)
{
	json_t *req = json_pack("{s:s, s:I}", "execute", command, "id", (json_int_t)id);
	if (!req)
		return NULL;
	if (args && json_object_set(req, "arguments", args) < 0) {
		json_decref(req);
		return NULL;
	}
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return NULL;
	size_t n = strlen(text);
	char *line = realloc(text, n + 2);
	if (!line) {
		free(text);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

/* The lines qmp_presend() writes and qmp_client_adopt_sent() expects:
 * qmp_capabilities with id 1, then cmds with ids 2 on, as a new client
 * numbers them (next_id starts at 1; send_capabilities takes the first). */
int qmp_presend(int fd, const char *const *cmds, size_t n)
{
	char buf[QMP_PRESEND_MAX * 64 + 64];
	size_t len = 0;
	if (n > QMP_PRESEND_MAX)
		return UV_EINVAL;
	for (size_t i = 0; i <= n; i++) {
		const char *name = i ? cmds[i - 1] : "qmp_capabilities";
		size_t l;
		if (!name || !*name || strlen(name) >= QMP_PRESEND_NAME_MAX)
			return UV_EINVAL;
		char *line = qmp_command_line(name, NULL, (uint64_t)i + 1, &l);
		if (!line)
			return UV_ENOMEM;
		if (l > sizeof(buf) - len) {
			free(line);
			return UV_EINVAL;
		}
		memcpy(buf + len, line, l);
		len += l;
		free(line);
	}
	ssize_t w;
	do
		w = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	return (size_t)w == len ? 0 : UV_EAGAIN;
}
