/*
 * Internals of profile parsing, shared by profile.c (reading, sections,
 * messages), profile_keys.c (the schema tables and per-key parsers) and
 * profile_check.c (cross-key rules and derived defaults). Not a public API.
 */
#ifndef SV_PROFILE_INT_H
#define SV_PROFILE_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"

#define PC_MAX_DEVICES 64       /* disks, CD-ROMs and NICs together */
#define PC_MAX_SEEN 32          /* keys per section (more than any table) */

enum sect_kind {
	SECT_GUEST, SECT_DISK, SECT_CDROM, SECT_NIC, SECT_SERIAL, SECT_DISPLAY,
	SECT_RESTART, SECT_SHUTDOWN, SECT_MIGRATION, SECT_QEMU,
};

struct pctx;
struct psect;
struct pkey;

/* A key's parser: stores the value, or reports what is wrong with it. */
typedef void (*pkey_fn)(struct pctx *c, struct psect *s, const struct pkey *k,
                        const char *v);

enum {
	PK_REPEAT = 1,          /* may be given more than once */
	PK_DASH = 2,            /* may start with '-' */
};

struct pkey {
	const char *name;
	pkey_fn fn;
	size_t off;             /* of the field in the section's struct */
	uint64_t min, max;      /* numbers, sizes, durations (ms) */
	const char *const *choices;     /* enum spellings, indexed by value */
	unsigned flags;
	const char *help;       /* what is allowed, for messages */
};

struct sect_def {
	const char *name;       /* "guest", or "disk" for [disk.ID] */
	enum sect_kind kind;
	bool has_id;
	const struct pkey *keys;        /* terminated by a NULL name */
};

struct pseen {
	const struct pkey *key;
	int line;
};

struct psect {
	enum sect_kind kind;
	const struct sect_def *def;
	int line;               /* of the header */
	size_t index;           /* into drives or nics */
	char *name;             /* as written between the brackets */
	char *id;               /* device sections: the part after the dot */
	struct pseen seen[PC_MAX_SEEN];
	size_t nseen;
};

struct perr {
	int line;
	size_t seq;
	char *msg;
};

struct pctx {
	const char *path;
	struct sv_profile *p;
	const char *buf;
	size_t len, off;
	int lineno;
	int cur;                /* index into sects; -1 bad section; -2 none yet */
	struct psect *sects;
	size_t nsects;
	struct perr *errs;
	size_t nerrs;
	size_t append_len, append_cap;  /* the joined append value so far */
	bool oom;
};

extern const struct sect_def pc_sect_defs[];

/* Record "path:line: [sect] key: what" (line <= 0: no line; sect or key NULL:
 * left out). */
void pc_report(struct pctx *c, int line, const char *sect, const char *key,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Report against key of section s, at the key's line (or the header's line
 * when the key was not given). */
void pc_key_error(struct pctx *c, const struct psect *s, const char *key,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Line of key in s, or of the section header when it was not given. */
int pc_key_line(const struct psect *s, const char *key);
bool pc_key_given(const struct psect *s, const char *key);

/* The section of a given kind and device index, or NULL. */
struct psect *pc_sect_of(struct pctx *c, enum sect_kind kind, size_t index);

/* The struct a section's keys are stored in (the profile, a drive, a NIC). */
void *pc_sect_obj(struct pctx *c, const struct psect *s);

/* A profile with every default that does not depend on other keys. */
struct sv_profile *pc_profile_new(const char *path);

/* Give a new device section's struct its id and defaults. 0 or -ENOMEM. */
int pc_sect_init(struct pctx *c, struct psect *s);

/* Cross-key rules and derived defaults, run after the whole file is read. */
void pc_check(struct pctx *c);

#endif
