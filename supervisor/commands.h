/*
 * The control verbs: one table, one handler per verb. Each handler answers
 * its request exactly once, now or later.
 */
#ifndef SV_COMMANDS_H
#define SV_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

struct sv_request;

enum { SV_CMD_MUTATES = 1 };

struct sv_guest;

struct sv_command {
	const char *name;
	void (*fn)(struct sv_request *req, json_t *args);
	unsigned flags;
	/* For fn = the guest dispatcher: what to run on the named guest. */
	void (*on_guest)(struct sv_guest *g, struct sv_request *req, json_t *args);
};

/* The command named verb, or NULL. */
const struct sv_command *sv_command_find(const char *verb);

/* The i-th command of the table, in table order, or NULL past the end (for
 * tests and documentation that must cover every verb). */
const struct sv_command *sv_command_at(size_t i);

#endif
