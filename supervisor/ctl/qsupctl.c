/*
 * qsupctl: the command-line client of qsupd's control socket.
 *   qsupctl [-s SOCKET] [-j|--json] VERB [ARGS]
 * One table of verbs drives both dispatch and --help. Arguments are checked
 * before connecting, so a usage error never reaches the daemon. Requests
 * for several guests are pipelined on one connection and reported in the
 * order given. Exit: 0 ok, 1 qsupd answered an error (or went away), 2 usage,
 * 3 cannot reach qsupd.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

static const struct ctl_cmd commands[] = {
	{ "list", ctl_list, "", "list guests: state, pid, uptime, restarts", 0, 0, 0 },
	{ "status", ctl_status, "NAME...", "show guests' state, process, profile, sockets",
	  1, -1, CTL_F_NAMES },
	{ "start", ctl_lifecycle, "[--all] [--parallel N] NAME...",
	  "start guests (a saved one resumes) and wait until they run",
	  1, -1, CTL_F_NAMES | CTL_F_ALL },
	{ "stop", ctl_lifecycle, "[-f] [--timeout S] [--all] [--parallel N] NAME...",
	  "stop guests, wait until QEMU exits (-f: at once)",
	  1, -1, CTL_F_NAMES | CTL_F_FORCE | CTL_F_ALL | CTL_F_TIMEOUT },
	{ "kill", ctl_lifecycle, "[--all] NAME...", "kill QEMU (SIGKILL), wait until it exits",
	  1, -1, CTL_F_NAMES | CTL_F_ALL },
	{ "pause", ctl_lifecycle, "NAME...", "pause guests' vCPUs", 1, -1, CTL_F_NAMES },
	{ "resume", ctl_lifecycle, "NAME...", "resume paused guests", 1, -1, CTL_F_NAMES },
	{ "reset", ctl_lifecycle, "NAME...", "hard-reset guests (the reset button)",
	  1, -1, CTL_F_NAMES },
	{ "restart", ctl_lifecycle, "NAME...", "stop and start guests, wait until they run",
	  1, -1, CTL_F_NAMES },
	{ "reset-failed", ctl_lifecycle, "NAME...",
	  "re-arm failed guests (too many restarts) without starting them", 1, -1, CTL_F_NAMES },
	{ "reload", ctl_reload, "", "re-read the profiles", 0, 0, 0 },
	{ "events", ctl_events, "[NAME...]", "stream events, of all guests or of the NAMEs",
	  0, -1, CTL_F_NAMES },
	{ "qmp", ctl_qmp, "NAME COMMAND [JSON-ARGS]", "run one QMP command, print QEMU's reply",
	  2, 3, CTL_F_NAME1 },
	{ "agent", ctl_agent, "[--timeout S] NAME COMMAND [JSON-ARGS]",
	  "run one guest agent command ([guest] agent = yes), print the agent's reply",
	  2, 3, CTL_F_NAME1 | CTL_F_TIMEOUT },
	{ "argv", ctl_argv, "NAME", "print the QEMU argv that start would use",
	  1, 1, CTL_F_NAMES },
	{ "attach", ctl_attach, "NAME disk|nic|cpu|memory [id=ID] [KEY=VALUE...]",
	  "hot-plug a disk (file=, format=, bus=virtio|scsi, read-only=on), "
	  "NIC (type=user|tap|bridge|network, ifname=, "
	  "bridge=, network=, mac=), vCPUs (count=N) or memory (size=)",
	  2, -1, CTL_F_NAME1 | CTL_F_PERSIST },
	{ "detach", ctl_detach, "NAME ID [timeout=MS]",
	  "unplug a hot-plugged device, wait until the guest released it", 2, 3,
	  CTL_F_NAME1 | CTL_F_PERSIST },
	{ "devices", ctl_devices, "NAME", "list a guest's devices: from the profile, its "
	  "overlay, hot-plugged",
	  1, 1, CTL_F_NAMES },
	{ "cdrom", ctl_cdrom, "NAME ID insert FILE [--format FMT] | NAME ID eject [-f]",
	  "change the disc in a running guest's CD-ROM drive ID (-f: even if the guest "
	  "locked the tray)", 3, 4, CTL_F_NAME1 | CTL_F_FORCE | CTL_F_FORMAT },
	{ "clone", ctl_clone, "[--linked] NAME NEW",
	  "a new guest NEW from stopped NAME: new MACs, its disks copied (--linked: qcow2 "
	  "overlays on NAME's images, which must then never change)", 2, 2,
	  CTL_F_NAMES | CTL_F_LINKED },
	{ "disk-resize", ctl_disk_resize, "NAME ID SIZE",
	  "grow disk ID to SIZE (such as 20G): live when the guest runs, else with qemu-img; "
	  "never shrinks", 3, 3, CTL_F_NAME1 },
	{ "snapshot", ctl_snapshot, "[-f] [--memory] NAME create|list|revert|delete [SNAP]",
	  "disk snapshots: take one (live; --memory: with the guest's RAM), list them, "
	  "revert to one (-f: stop the guest at once first), delete one (its layer merged)",
	  2, 3, CTL_F_NAME1 | CTL_F_FORCE | CTL_F_MEMORY },
	{ "set", ctl_set, "[-p] NAME KEY=VALUE...",
	  "change a running guest's resources live: disk.ID.bps-write=10M (I/O limits), "
	  "cpu-affinity=0-1, emulator-affinity=, balloon=SIZE (-p: and from its next start)",
	  2, -1, CTL_F_NAME1 | CTL_F_PERSIST },
	{ "backup", ctl_backup, "[--full|--incremental] [-w] NAME DIR [speed=BYTES]",
	  "back up every disk of a running guest into DIR (full, or incremental: what "
	  "changed since the last backup in DIR; default: incremental when DIR has one); "
	  "-w: show the progress, return when done", 2, 3, CTL_F_NAME1 | CTL_F_BACKUP },
	{ "backup-cancel", ctl_backup_cancel, "NAME", "cancel a running backup (nothing is "
	  "kept; the dirty bitmap stays for the next try)", 1, 1, CTL_F_NAMES },
	{ "backup-restore", ctl_backup_restore, "NAME DIR [ID]",
	  "write a stopped guest's disks back from the backup chain in DIR ending at ID "
	  "(default: the newest)", 2, 3, CTL_F_NAME1 },
	{ "display", ctl_display, "[--password] NAME",
	  "print the guest's VNC address (vnc://HOST:PORT); --password: and its password",
	  1, 1, CTL_F_NAMES | CTL_F_PASSWORD },
	{ "console", ctl_console_cmd, "[-f] NAME",
	  "attach to the serial console (Ctrl-] detaches; -f: take it over)",
	  1, 1, CTL_F_NAMES | CTL_F_FORCE },
	{ "migrate", ctl_migrate, "[-w] [--to SOCKET|ssh://HOST [--tunnel]] [--copy-storage [-f]] "
	  "NAME [URI] [KEY=VALUE...]",
	  "live-migrate a guest (downtime=MS, bandwidth=, multifd-channels=, capabilities=, "
	  "timeout=MS, postcopy-after=N)", 1, -1,
	  CTL_F_NAME1 | CTL_F_MIGRATE | CTL_F_TUNNEL | CTL_F_FORCE | CTL_F_COPY_STORAGE },
	{ "incoming", ctl_incoming, "NAME [URI] [KEY=VALUE...]",
	  "start a guest waiting for a migration (default URI: a unix socket in its run dir)",
	  1, -1, CTL_F_NAME1 },
	{ "migrate-cancel", ctl_migrate_cancel, "NAME", "cancel an outgoing migration",
	  1, 1, CTL_F_NAMES },
	{ "migrate-postcopy", ctl_migrate_cancel, "NAME",
	  "switch a migration to postcopy (capabilities=postcopy-ram)", 1, 1, CTL_F_NAMES },
	{ "save", ctl_save, "[--all] [--parallel N] NAME [FILE]",
	  "save a running guest (it is then stopped) to FILE, or for its next start",
	  1, 2, CTL_F_NAME1 | CTL_F_ALL },
	{ "restore", ctl_save, "NAME [FILE]",
	  "start a guest from FILE, or from what save without FILE kept", 1, 2, CTL_F_NAME1 },
	{ "net-list", ctl_net_list, "", "list the managed networks: mode, bridge, subnet, "
	  "state, guests", 0, 0, 0 },
	{ "net-status", ctl_net_status, "NAME...", "show networks: bridge, subnet, dnsmasq, "
	  "leases (MAC, IP, guest, expiry)", 1, -1, CTL_F_NAMES },
	{ "net-start", ctl_net_startstop, "NAME...", "bring networks up (bridge, dnsmasq, "
	  "rules)", 1, -1, CTL_F_NAMES },
	{ "net-stop", ctl_net_startstop, "NAME...", "take networks down (refused while a "
	  "guest uses one)", 1, -1, CTL_F_NAMES },
	{ "log", ctl_log, "[-n LINES] [-f] NAME", "show the end of a guest's log: QEMU's output "
	  "and its starts and ends (-f: follow)", 1, 1, CTL_F_NAMES | CTL_F_LOG },
	{ "stats", ctl_stats, "[NAME...]", "show guests' resource use: CPU time, memory, "
	  "disk and network bytes (--json: every figure)", 0, -1, CTL_F_NAMES },
	{ "metrics", ctl_metrics, "", "print the metrics in the Prometheus text format",
	  0, 0, 0 },
	{ "top", ctl_top, "[-d SECONDS] [-b] [-n N] [NAME...]", "a live table of the guests: "
	  "CPU %, memory, disk and network rates; keys c m d n u a sort, q quits",
	  0, -1, CTL_F_NAMES | CTL_F_TOP },
	{ "host-check", ctl_host_check, "[-d DIR] [-r DIR]", "check that this host can run "
	  "guests (KVM, QEMU, OVMF, dirs, devices), without qsupd; exit 1 on FAIL",
	  0, 0, CTL_F_HOSTCHECK },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* ------------------------------------------------------------ usage */

static void usage(FILE *out)
{
	fprintf(out, "usage: qsupctl [-s SOCKET | -c URI] [-j] VERB [ARGS]\n"
	        "       qsupctl [-s SOCKET] --stdio | --stdio-connect SOCKET\n\nverbs:\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		char left[64];

		snprintf(left, sizeof(left), "%s %s", commands[i].name, commands[i].args);
		fprintf(out, "  %-28s  %s\n", left, commands[i].help);
	}
	fprintf(out, "\noptions:\n"
	        "  -s, --socket SOCKET   qsupd's control socket (default: $QSUP_SOCKET, else\n"
	        "                        /run/qsup/qsupd.sock for root, else\n"
	        "                        $XDG_RUNTIME_DIR/qsup/qsupd.sock)\n"
	        "  -c, --connect URI     the qsupd to talk to: unix:///PATH, or\n"
	        "                        ssh://[USER@]HOST[:PORT][/PATH] through ssh\n"
	        "                        (default: $QSUP_URI, else the socket above)\n"
	        "  --stdio               bridge stdin and stdout to qsupd's socket (the\n"
	        "                        remote end of -c ssh://)\n"
	        "  --stdio-connect SOCKET  bridge stdin and stdout to another unix socket\n"
	        "  -j, --json            print replies (and events) as JSON, one per line\n"
	        "  -h, --help            show this help\n"
	        "  -V, --version         show the version\n");
}

static void cmd_usage(FILE *out, const struct ctl_cmd *cmd)
{
	fprintf(out, "usage: qsupctl %s %s\n  %s\n", cmd->name, cmd->args, cmd->help);
	if ((cmd->flags & CTL_F_FORCE) && !strcmp(cmd->name, "console"))
		fprintf(out, "  -f, --force  take the console over from the client that "
		        "holds it\n");
	else if (cmd->flags & CTL_F_COPY_STORAGE)
		fprintf(out, "  --copy-storage   the disks travel too: the destination creates "
		        "them and\n                   the source mirrors them over NBD (automatic "
		        "when the\n                   destination lacks every disk file)\n"
		        "  -f, --force      copy-storage may overwrite files the destination "
		        "already has\n");
	else if ((cmd->flags & CTL_F_FORCE) && !strcmp(cmd->name, "cdrom"))
		fprintf(out, "  -f, --force  open the tray even if the guest's OS locked it\n");
	else if (cmd->flags & CTL_F_FORCE)
		fprintf(out, "  -f, --force  skip the graceful steps: quit QEMU at once\n");
	if (cmd->flags & CTL_F_MIGRATE)
		fprintf(out, "  -t, --to SOCKET  the destination qsupd's control socket (or "
		        "ssh://[USER@]HOST[:PORT][/SOCKET]):\n                   it is prepared "
		        "first\n  -w, --wait       show the progress, return when it "
		        "is over\n");
	if (cmd->flags & CTL_F_TUNNEL)
		fprintf(out, "  --tunnel         with --to ssh://: the stream through ssh too, "
		        "not over TCP\n");
	if ((cmd->flags & CTL_F_TIMEOUT) && !strcmp(cmd->name, "agent"))
		fprintf(out, "  --timeout S    wait S seconds for the agent's answer (default: 10)\n");
	else if (cmd->flags & CTL_F_TIMEOUT)
		fprintf(out, "  --timeout S    wait S seconds for the ACPI power-off (default: "
		        "the profile's\n                 shutdown-timeout), pressing again "
		        "every 5 s\n");
	if (cmd->flags & CTL_F_BACKUP)
		fprintf(out, "  --full         a full backup (a new chain)\n"
		        "  --incremental  only what changed since the last backup in DIR\n"
		        "  -w, --wait     show the progress, return when it is over\n"
		        "  speed=BYTES    at most BYTES (K, M, G) per second per disk\n");
	if (cmd->flags & CTL_F_ALL)
		fprintf(out, "  --all          every guest this applies to, instead of names; "
		        "ends with\n                 a summary line\n"
		        "  --parallel N   at most N guests at a time (default 0: all at "
		        "once)\n");
	if (cmd->flags & CTL_F_LOG)
		fprintf(out, "  -n, --lines LINES  how many lines, from 1 to 10000 (default 50)\n"
		        "  -f, --follow       then print lines as they are written, until "
		        "Ctrl-C\n");
	if (cmd->flags & CTL_F_FORMAT)
		fprintf(out, "  --format FMT   the image's format: raw (the default), qcow2, "
		        "...\n");
	if (cmd->flags & CTL_F_PASSWORD)
		fprintf(out, "  --password     also print the VNC password (password-file or "
		        "password = generate)\n");
	if (cmd->flags & CTL_F_HOSTCHECK)
		fprintf(out, "  -d, --profiles DIR  the profile dir (default: qsupd's)\n"
		        "  -r, --run-dir DIR   the run dir (default: qsupd's)\n"
		        "  -j, --json          an array of {name, result, detail, fix}\n");
	if (cmd->flags & CTL_F_TOP)
		fprintf(out, "  -d, --delay SECONDS  between frames (default 3; from 0.1)\n"
		        "  -b, --batch          plain frames, no screen control nor keys (also "
		        "when\n                       not on a terminal)\n"
		        "  -n N                 stop after N frames\n"
		        "  keys: c cpu, m memory, d disk, n network, u uptime, a name (sort); "
		        "q quits\n");
	if ((cmd->flags & CTL_F_PERSIST) && !strcmp(cmd->name, "set"))
		fprintf(out, "  -p, --persist  also record it in NAME.d/set.ini next to the "
		        "profile, which\n                 every start applies (a stopped guest: "
		        "only there)\n");
	else if (cmd->flags & CTL_F_PERSIST)
		fprintf(out, "  -p, --persist  also record it in the guest's overlay "
		        "(NAME.d/hotplug.ini),\n                 so that it lasts across stop "
		        "and start\n");
}

static const struct ctl_cmd *cmd_find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static int unknown_verb(const char *verb)
{
	const char *best = NULL;
	unsigned best_d = 3;

	for (size_t i = 0; i < NCOMMANDS; i++) {
		unsigned d = sv_edit_distance(verb, commands[i].name, 2);

		if (d < best_d) {
			best_d = d;
			best = commands[i].name;
		}
	}
	fprintf(stderr, "qsupctl: unknown verb '%s'", verb);
	if (best)
		fprintf(stderr, "; did you mean '%s'?", best);
	fprintf(stderr, " (see qsupctl --help)\n");
	return CTL_EXIT_USAGE;
}

/* ------------------------------------------------------------ replies */

void ctl_print_json(json_t *v, size_t flags)
{
	char *text = json_dumps(v, JSON_ENCODE_ANY | flags);

	if (text)
		printf("%s\n", text);
	free(text);
}

/* A start that found the guest up, a stop or kill that found it down:
 * success, said on stderr ("qsupctl: start web1: already running"). */
static void note_already(struct ctl *c, const char *what, json_t *ret)
{
	const char *state = sv_jstr(ret, "state", "?");
	const char *word = strcmp(c->cmd->name, "start") == 0 ? "running" : "stopped";

	if (!json_is_true(json_object_get(ret, "already")))
		return;
	fflush(stdout);
	fprintf(stderr, "qsupctl: %s%s%s: already %s%s%s%s\n", c->cmd->name, what ? " " : "",
	        what ? what : "", word, strcmp(state, word) ? " (" : "",
	        strcmp(state, word) ? state : "", strcmp(state, word) ? ")" : "");
}

/* Report a reply: with --json its return value (or error object) on
 * stdout; else show(name, return). An error also goes to stderr as
 * "qsupctl: VERB [WHAT]: desc". Returns the exit status. */
int ctl_handle_reply(struct ctl *c, const char *what, json_t *reply,
                        void (*show)(struct ctl *, const char *, json_t *))
{
	json_t *e = json_object_get(reply, "error");

	if (!e) {
		note_already(c, what, json_object_get(reply, "return"));
		if (c->json)
			ctl_print_json(json_object_get(reply, "return"), 0);
		else if (show)
			show(c, what, json_object_get(reply, "return"));
		fflush(stdout);   /* each outcome as it is known, in order with stderr */
		return CTL_EXIT_OK;
	}
	if (c->json)
		ctl_print_json(e, 0);
	fflush(stdout);
	fprintf(stderr, "qsupctl: %s%s%s: %s\n", c->cmd->name, what ? " " : "", what ? what : "",
	        sv_jstr(e, "desc", "error without a description"));
	return CTL_EXIT_ERROR;
}

int ctl_lost(struct ctl *c, const char *what, const struct sv_error *err)
{
	fprintf(stderr, "qsupctl: %s%s%s: %s\n", c->cmd->name, what ? " " : "", what ? what : "",
	        err->msg);
	return CTL_EXIT_ERROR;
}

int ctl_connect(struct ctl *c)
{
	char path[SV_SOCK_PATH_MAX];
	struct sv_error err = { 0 };

	if (c->conn.fd >= 0)   /* connected already: one connection per run */
		return CTL_EXIT_OK;

	const char *uri = c->uri;
	if (!uri && !c->socket_opt && getenv("QSUP_URI") && *getenv("QSUP_URI"))
		uri = getenv("QSUP_URI");
	if (c->uri && c->socket_opt) {
		fprintf(stderr, "qsupctl: give -s SOCKET or -c URI, not both\n");
		return CTL_EXIT_USAGE;
	}
	if (uri && !strncmp(uri, "ssh://", 6)) {
		c->uri = uri;   /* the console connects through it too */
		return ctl_ssh_open(&c->conn, uri);
	}
	if (uri && !strncmp(uri, "unix://", 7) && uri[7] == '/') {
		c->socket_opt = uri + 7;
	} else if (uri) {
		fprintf(stderr, "qsupctl: '%s' is not a URI qsupctl knows: unix:///PATH or "
		        "ssh://[USER@]HOST[:PORT][/PATH]\n", uri);
		return CTL_EXIT_USAGE;
	}
	if (ctl_socket_path(c->socket_opt, getenv("QSUP_SOCKET"), getenv("XDG_RUNTIME_DIR"),
	                    geteuid(), path, sizeof(path), &err) < 0 ||
	    ctl_conn_open(&c->conn, path, CTL_GREETING_TIMEOUT_MS, &err) < 0) {
		fprintf(stderr, "qsupctl: %s\n", err.msg);
		return CTL_EXIT_CONNECT;
	}
	return CTL_EXIT_OK;
}

/* Connect, send one request and wait for its reply. Takes args. */
int ctl_call(struct ctl *c, const char *execute, json_t *args, const char *what,
                json_t **reply)
{
	struct sv_error err = { 0 };
	int64_t id;
	int r = ctl_connect(c);

	if (r) {
		json_decref(args);
		return r;
	}
	if (ctl_conn_send(&c->conn, execute, args, &id, &err) < 0 ||
	    ctl_conn_reply(&c->conn, id, reply, &err) < 0)
		return ctl_lost(c, what, &err);
	return CTL_EXIT_OK;
}

/* ctl_call, then ctl_handle_reply with show: the exit status. Takes args. */
int ctl_request(struct ctl *c, const char *execute, json_t *args, const char *what,
                void (*show)(struct ctl *, const char *, json_t *))
{
	json_t *reply = NULL;
	int r = ctl_call(c, execute, args, what, &reply);

	if (r == CTL_EXIT_OK)
		r = ctl_handle_reply(c, what, reply, show);
	json_decref(reply);
	return r;
}

static int send_named(struct ctl *c, const char *name, int64_t *id)
{
	struct sv_error err = { 0 };
	json_t *args = json_pack("{s:s}", "name", name);

	if (c->force)
		json_object_set_new(args, "force", json_true());
	return ctl_conn_send(&c->conn, c->cmd->name, args, id, &err) < 0 ?
	       ctl_lost(c, name, &err) : CTL_EXIT_OK;
}

/* Send the verb once per name, pipelined, then report the replies in the
 * order of the names. Returns 1 if any failed. */
int ctl_per_name(struct ctl *c, char **names, int n,
                    void (*show)(struct ctl *, const char *, json_t *))
{
	struct sv_error err = { 0 };
	int64_t *ids = calloc((size_t)n, sizeof(*ids));
	int r = ids ? ctl_connect(c) : CTL_EXIT_ERROR, failed = 0;

	for (int i = 0; r == CTL_EXIT_OK && i < n; i++)
		r = send_named(c, names[i], &ids[i]);
	for (int i = 0; r == CTL_EXIT_OK && i < n; i++) {
		json_t *reply = NULL;

		if (ctl_conn_reply(&c->conn, ids[i], &reply, &err) < 0)
			r = ctl_lost(c, names[i], &err);
		else
			failed |= ctl_handle_reply(c, names[i], reply, show);
		json_decref(reply);
	}
	free(ids);
	return r != CTL_EXIT_OK ? r : failed ? CTL_EXIT_ERROR : CTL_EXIT_OK;
}

/* ------------------------------------------------------------ main */

enum { OPT_STDIO = 1000, OPT_STDIO_CONNECT };

static const struct option global_opts[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "connect", required_argument, NULL, 'c' },
	{ "stdio", no_argument, NULL, OPT_STDIO },
	{ "stdio-connect", required_argument, NULL, OPT_STDIO_CONNECT },
	{ "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static const struct option verb_opts[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "json", no_argument, NULL, 'j' },
	{ "force", no_argument, NULL, 'f' },
	{ "persist", no_argument, NULL, 'p' },
	{ "to", required_argument, NULL, 't' },
	{ "wait", no_argument, NULL, 'w' },
	{ "all", no_argument, NULL, 'a' },
	{ "parallel", required_argument, NULL, 'P' },
	{ "timeout", required_argument, NULL, 'T' },
	{ "lines", required_argument, NULL, 'n' },
	{ "follow", no_argument, NULL, 'F' },
	{ "format", required_argument, NULL, 'o' },
	{ "password", no_argument, NULL, 'W' },
	{ "profiles", required_argument, NULL, 'd' },
	{ "run-dir", required_argument, NULL, 'r' },
	{ "linked", no_argument, NULL, 'L' },
	{ "memory", no_argument, NULL, 'M' },
	{ "delay", required_argument, NULL, 'D' },
	{ "batch", no_argument, NULL, 'b' },
	{ "full", no_argument, NULL, 'U' },
	{ "incremental", no_argument, NULL, 'I' },
	{ "tunnel", no_argument, NULL, 'X' },
	{ "copy-storage", no_argument, NULL, 'K' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* where: the verb, or NULL before it. */
static int bad_option(const char *where, int opt, const char *arg)
{
	fprintf(stderr, "qsupctl: %s%s", where ? where : "", where ? ": " : "");
	if (arg && !strncmp(arg, "--", 2))   /* a long option this verb does not take */
		fprintf(stderr, "unknown option '%.*s'\n", (int)strcspn(arg, "="), arg);
	else if (opt && opt != '?')
		fprintf(stderr, "unknown option '-%c'\n", opt);
	else
		fprintf(stderr, "unknown option '%s'\n", arg);
	return CTL_EXIT_USAGE;
}

/* --stdio: the bridge to qsupd's socket (-s, QSUP_SOCKET, the default). */
static int stdio_bridge(struct ctl *c)
{
	char path[SV_SOCK_PATH_MAX];
	struct sv_error err = { 0 };

	if (ctl_socket_path(c->socket_opt, getenv("QSUP_SOCKET"), getenv("XDG_RUNTIME_DIR"),
	                    geteuid(), path, sizeof(path), &err) < 0) {
		fprintf(stderr, "qsupctl: %s\n", err.msg);
		return CTL_EXIT_CONNECT;
	}
	return ctl_stdio_bridge(path, true);
}

/* Global options, up to the verb. Returns -1 to go on, or an exit status. */
static int parse_global(struct ctl *c, int argc, char **argv)
{
	const char *bridge_to = NULL;
	bool stdio = false;
	int o;

	opterr = 0;
	while ((o = getopt_long(argc, argv, "+:s:c:jhV", global_opts, NULL)) != -1) {
		switch (o) {
		case 's': c->socket_opt = optarg; break;
		case 'c': c->uri = optarg; break;
		case OPT_STDIO: stdio = true; break;
		case OPT_STDIO_CONNECT: bridge_to = optarg; break;
		case 'j': c->json = true; break;
		case 'h': usage(stdout); return CTL_EXIT_OK;
		case 'V': printf("qsupctl %s\n", SV_VERSION); return CTL_EXIT_OK;
		case ':':
			fprintf(stderr, "qsupctl: option '%s' needs an argument\n", argv[optind - 1]);
			return CTL_EXIT_USAGE;
		default: return bad_option(NULL, optopt, argv[optind - 1]);
		}
	}
	if ((stdio || bridge_to) && (optind < argc || c->uri || (stdio && bridge_to))) {
		fprintf(stderr, "qsupctl: --stdio and --stdio-connect take no verb, nor -c, "
		        "nor each other\n");
		return CTL_EXIT_USAGE;
	}
	if (stdio)
		return stdio_bridge(c);
	if (bridge_to)
		return ctl_stdio_bridge(bridge_to, false);
	if (optind >= argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	return -1;
}

/* s as a whole number from lo (0 or more) to hi, digits only; -1 when it
 * is not one. */
static long number_arg(const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *s < '0' || *s > '9' || *end || v < lo || v > hi ? -1 : v;
}

/* The verb's own options (anywhere after it) and its arguments. argv[0] is
 * the verb. Returns -1 to go on, or an exit status. */
static int parse_verb(struct ctl *c, int argc, char **argv, int *first)
{
	const struct ctl_cmd *cmd = c->cmd;
	int o, n;

	optind = 0;   /* glibc: start over on the new vector */
	while ((o = getopt_long(argc, argv, ":s:jfpt:whaP:T:n:d:r:b", verb_opts, NULL)) != -1) {
		if (o == 'f' && (cmd->flags & CTL_F_LOG))
			o = 'F';   /* -f is --follow here */
		if (o == 'd' && (cmd->flags & CTL_F_TOP))
			o = 'D';   /* -d is --delay here, as in top(1) */
		if (o == 's') {
			c->socket_opt = optarg;
		} else if (o == 'j') {
			c->json = true;
		} else if (o == 'f' && (cmd->flags & CTL_F_FORCE)) {
			c->force = true;
		} else if (o == 'p' && (cmd->flags & CTL_F_PERSIST)) {
			c->persist = true;
		} else if (o == 't' && (cmd->flags & CTL_F_MIGRATE)) {
			c->to = optarg;
		} else if (o == 'w' && (cmd->flags & (CTL_F_MIGRATE | CTL_F_BACKUP))) {
			c->wait = true;
		} else if (o == 'a' && (cmd->flags & CTL_F_ALL)) {
			c->all = true;
		} else if ((o == 'P' && (cmd->flags & CTL_F_ALL)) ||
		           (o == 'T' && (cmd->flags & CTL_F_TIMEOUT))) {
			long v = number_arg(optarg, o == 'P' ? 0 : 1, 86400);
			if (v < 0) {
				fprintf(stderr, "qsupctl: %s: %s must be a number%s, not '%s'\n",
				        cmd->name, o == 'P' ? "--parallel" : "--timeout",
				        o == 'P' ? " (0: no limit)" : " of seconds, 1 to 86400", optarg);
				return CTL_EXIT_USAGE;
			}
			*(o == 'P' ? &c->parallel : &c->timeout) = (int)v;
		} else if (o == 'D' && (cmd->flags & CTL_F_TOP)) {
			char *end;
			double v = strtod(optarg, &end);
			if (*optarg < '0' || *optarg > '9' || *end || !(v >= 0.1 && v <= 3600)) {
				fprintf(stderr, "qsupctl: %s: --delay must be a number of seconds from "
				        "0.1 to 3600, not '%s'\n", cmd->name, optarg);
				return CTL_EXIT_USAGE;
			}
			c->delay = v;
		} else if (o == 'b' && (cmd->flags & CTL_F_TOP)) {
			c->batch = true;
		} else if (o == 'n' && (cmd->flags & CTL_F_TOP)) {
			long v = number_arg(optarg, 1, 1000000);
			if (v < 0) {
				fprintf(stderr, "qsupctl: %s: -n must be a number of frames from 1 to "
				        "1000000, not '%s'\n", cmd->name, optarg);
				return CTL_EXIT_USAGE;
			}
			c->iterations = v;
		} else if (o == 'n' && (cmd->flags & CTL_F_LOG)) {
			c->lines = optarg;
		} else if (o == 'F' && (cmd->flags & CTL_F_LOG)) {
			c->follow = true;
		} else if (o == 'o' && (cmd->flags & CTL_F_FORMAT)) {
			c->format = optarg;
		} else if (o == 'W' && (cmd->flags & CTL_F_PASSWORD)) {
			c->password = true;
		} else if (o == 'L' && (cmd->flags & CTL_F_LINKED)) {
			c->linked = true;
		} else if (o == 'M' && (cmd->flags & CTL_F_MEMORY)) {
			c->memory = true;
		} else if (o == 'U' && (cmd->flags & CTL_F_BACKUP)) {
			c->kind_full = true;
		} else if (o == 'I' && (cmd->flags & CTL_F_BACKUP)) {
			c->kind_incremental = true;
		} else if (o == 'X' && (cmd->flags & CTL_F_TUNNEL)) {
			c->tunnel = true;
		} else if (o == 'K' && (cmd->flags & CTL_F_COPY_STORAGE)) {
			c->copy_storage = true;
		} else if (o == 'o' || o == 'W' || o == 'L' || o == 'M' || o == 'D' || o == 'U' ||
		           o == 'I' || o == 'X' || o == 'K') {
			/* long only: name it as given */
			fprintf(stderr, "qsupctl: %s: unknown option '%s'\n", cmd->name,
			        o == 'o' ? "--format" : o == 'W' ? "--password" : o == 'L' ? "--linked"
			        : o == 'M' ? "--memory" : o == 'D' ? "--delay" : o == 'U' ? "--full"
			        : o == 'X' ? "--tunnel" : o == 'K' ? "--copy-storage" : "--incremental");
			return CTL_EXIT_USAGE;
		} else if (o == 'd' && (cmd->flags & CTL_F_HOSTCHECK)) {
			c->profile_dir = optarg;
		} else if (o == 'r' && (cmd->flags & CTL_F_HOSTCHECK)) {
			c->run_dir = optarg;
		} else if (o == 'h') {
			cmd_usage(stdout, cmd);
			return CTL_EXIT_OK;
		} else if (o == ':') {
			fprintf(stderr, "qsupctl: %s: option '%s' needs an argument\n", cmd->name,
			        argv[optind - 1]);
			return CTL_EXIT_USAGE;
		} else {
			return bad_option(cmd->name, o == 'F' ? 0 : strchr("fptwnaPTdrb", o) ? o : optopt,
			                  argv[optind - 1]);
		}
	}
	n = argc - optind;
	if (c->all && n > 0) {
		fprintf(stderr, "qsupctl: %s: give --all or names, not both\n", cmd->name);
		return CTL_EXIT_USAGE;
	}
	if ((n < cmd->min && !c->all) || (cmd->max >= 0 && n > cmd->max)) {
		fprintf(stderr, "qsupctl: %s: %s\n", cmd->name,
		        n < cmd->min ? "missing arguments" : "too many arguments");
		cmd_usage(stderr, cmd);
		return CTL_EXIT_USAGE;
	}
	for (int i = optind; i < argc; i++) {
		if (!(cmd->flags & CTL_F_NAMES) && !(i == optind && (cmd->flags & CTL_F_NAME1)))
			continue;
		if (!sv_name_valid(argv[i])) {
			fprintf(stderr, "qsupctl: %s: '%s' is not a valid guest name\n",
			        cmd->name, argv[i]);
			return CTL_EXIT_USAGE;
		}
	}
	*first = optind;
	return -1;
}

int main(int argc, char **argv)
{
	struct ctl c = { .conn = { .fd = -1 } };
	int r, first = 1;

	r = parse_global(&c, argc, argv);
	if (r >= 0)
		return r;
	argc -= optind;
	argv += optind;
	if (!(c.cmd = cmd_find(argv[0])))
		return unknown_verb(argv[0]);
	r = parse_verb(&c, argc, argv, &first);
	if (r >= 0)
		return r;
	r = c.cmd->fn(&c, argv + first, argc - first);
	ctl_conn_close(&c.conn);
	ctl_ssh_reap();
	if (fflush(stdout) != 0 && r == CTL_EXIT_OK) {
		fprintf(stderr, "qsupctl: writing stdout: %s\n", strerror(errno));
		r = CTL_EXIT_ERROR;
	}
	if (c.signal) {
		signal(c.signal, SIG_DFL);
		raise(c.signal);
		r = 128 + c.signal;
	}
	return r;
}
