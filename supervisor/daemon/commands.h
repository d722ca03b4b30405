/*
 * The control verbs: one table, one handler per verb. Each handler answers
 * its request exactly once, now or later.
 */
#ifndef SV_COMMANDS_H
#define SV_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

struct sv_daemon;
struct sv_error;
struct sv_request;

enum {
	SV_CMD_MUTATES = 1,     /* needs the right to change things */
	SV_CMD_GUEST = 2,       /* names a guest: {"name": string} */
};

struct sv_guest;

struct sv_command {
	const char *name;
	void (*fn)(struct sv_daemon *d, struct sv_request *req, json_t *args);
	unsigned flags;
	/* For fn = the guest dispatcher: what to run on the named guest. */
	void (*on_guest)(struct sv_guest *g, struct sv_request *req, json_t *args);
	/* The verb's own argument checks (beyond "name"), run before fn: 0
	 * when fine, else a negative errno with err's class and message set.
	 * Pure. */
	int (*check)(json_t *args, struct sv_error *err);
};

/* A request's shape: an object with an "execute" string naming a verb of
 * the table, an optional "arguments" object and an optional "id". Returns
 * 0 with *cmd and *args (borrowed; NULL for none) set, or a negative errno
 * with err's class (GenericError, InvalidArgument, CommandNotFound) and
 * message set. Pure. */
int sv_request_parse(json_t *msg, const struct sv_command **cmd, json_t **args,
                     struct sv_error *err);

/* The arguments of a request for cmd (args may be NULL): the guest's name
 * when the verb needs one, then the verb's own checks. Returns 0 or a
 * negative errno with err set. Pure: nothing here looks at the guests. */
int sv_command_check(const struct sv_command *cmd, json_t *args, struct sv_error *err);

/* Run cmd for req (its checks passed). A verb that changes a guest still
 * being re-adopted (its QMP not yet back after a qsupd restart) waits until
 * the re-adoption is over, whichever way it ends; start, stop and kill do
 * not wait (they act on the QEMU through its pidfd), nor does a verb that
 * only reads. */
void sv_command_run(struct sv_daemon *d, const struct sv_command *cmd,
                    struct sv_request *req, json_t *args);

/* A guest changed state: run the requests that waited for its re-adoption
 * (at the next loop turn). */
void sv_commands_adoption_progress(struct sv_daemon *d);

/* At exit: answer every request still waiting (qsupd is exiting). */
void sv_commands_drop_waiting(struct sv_daemon *d);

/* The command named verb, or NULL. */
const struct sv_command *sv_command_find(const char *verb);

/* The i-th command of the table, in table order, or NULL past the end (for
 * tests and documentation that must cover every verb). */
const struct sv_command *sv_command_at(size_t i);

#endif
