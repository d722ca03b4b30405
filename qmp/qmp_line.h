/* libqmp's own: the command lines a client writes (qmp_line.c). */
#ifndef QMP_LINE_H
#define QMP_LINE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* The longest command name qmp_presend() takes, its NUL included. */
#define QMP_PRESEND_NAME_MAX 32

/* {"execute": command, "arguments": args, "id": id} and a newline, as
 * sent (malloc'd; its length in *len), or NULL. args may be NULL. */
char *qmp_command_line(const char *command, json_t *args, uint64_t id, size_t *len);

#endif
