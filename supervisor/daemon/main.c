/*
 * qsupd: the qsup daemon, and its offline modes:
 *   qsupd [-f] [options]         run the daemon (daemon.c), in the foreground
 *   qsupd --check [PROFILE...]   validate profiles (all in the profile dir)
 *   qsupd --print-argv PROFILE   print the QEMU argv, one element per line
 * Options are one table, which drives both getopt_long and the usage text.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "argv.h"
#include "control.h"
#include "daemon.h"
#include "guestlog.h"
#include "host.h"
#include "identity.h"
#include "image.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "network.h"
#include "overlay.h"
#include "tune.h"
#include "profhost.h"
#include "profile.h"
#include "snaprec.h"
#include "snapshot.h"
#include "sshlink.h"
#include "util.h"

#define DEFAULT_PROFILE_DIR "/etc/qsup/profiles"
#define DEFAULT_NETWORKS_DIR "/etc/qsup/networks"
#define DEFAULT_RUN_DIR "/run/qsup"
#define DEFAULT_STATE_DIR "/var/lib/qsup"
#define DEFAULT_LOG_DIR "/var/log/qsup"

enum mode { MODE_DAEMON, MODE_CHECK, MODE_PRINT_ARGV, MODE_HELP, MODE_VERSION };

struct opts {
	enum mode mode;
	bool mode_given;
	const char *profile_dir;
	const char *networks_dir;
	const char *run_dir;
	const char *print_target;
	char **targets;         /* positional PROFILE arguments */
	int ntargets;
	struct sv_daemon_opts daemon;
};

/* Long-only options: values above any character. */
enum { OPT_NO_AUTOSTART = 256, OPT_STOP_GUESTS, OPT_LOG_LEVEL, OPT_STATE_DIR, OPT_UID_RANGE,
       OPT_SOCKET_MODE, OPT_SOCKET_GROUP, OPT_IDLE_TIMEOUT, OPT_LOG_DIR, OPT_LOG_MAX_SIZE,
       OPT_NETWORKS, OPT_STATS_INTERVAL, OPT_METRICS_LISTEN, OPT_SSH_CONFIG };

struct optdef {
	const char *name;
	int has_arg;
	int short_name;
	const char *arg;
	const char *help;
};

static const struct optdef optdefs[] = {
	{ "foreground", no_argument, 'f', NULL,
	  "run the daemon (the default mode; it never forks into the background)" },
	{ "socket", required_argument, 's', "PATH",
	  "daemon: control socket (default RUN-DIR/qsupd.sock)" },
	{ "socket-mode", required_argument, OPT_SOCKET_MODE, "MODE",
	  "daemon: the socket's mode, octal (default 0660; 0666 lets anyone read)" },
	{ "socket-group", required_argument, OPT_SOCKET_GROUP, "GROUP",
	  "daemon: the socket's group (name or gid); its members may use every verb" },
	{ "idle-timeout", required_argument, OPT_IDLE_TIMEOUT, "SECONDS",
	  "daemon: drop a client that sends no request within SECONDS (default 30)" },
	{ "no-autostart", no_argument, OPT_NO_AUTOSTART, NULL,
	  "daemon: do not start the autostart guests" },
	{ "stop-guests-on-exit", no_argument, OPT_STOP_GUESTS, NULL,
	  "daemon: stop every guest when the daemon exits" },
	{ "log-level", required_argument, OPT_LOG_LEVEL, "LEVEL",
	  "daemon: debug, info (default), warning or error" },
	{ "log-dir", required_argument, OPT_LOG_DIR, "DIR",
	  "daemon: the guests' log files, DIR/NAME.log (default " DEFAULT_LOG_DIR " as "
	  "root, else STATE-DIR/log)" },
	{ "log-max-size", required_argument, OPT_LOG_MAX_SIZE, "SIZE",
	  "daemon: at a start, a guest's log over SIZE becomes NAME.log.1 (default 1M; "
	  "0: never)" },
	{ "state-dir", required_argument, OPT_STATE_DIR, "DIR",
	  "daemon: what outlives a reboot (default " DEFAULT_STATE_DIR " as root, "
	  "else $XDG_STATE_HOME/qsup)" },
	{ "uid-range", required_argument, OPT_UID_RANGE, "FIRST-LAST",
	  "daemon, as root: the uids of guests' QEMUs (default 1879048192-1895825407)" },
	{ "check", no_argument, 'n', NULL,
	  "validate the PROFILE files given, or every *.ini in the profile dir" },
	{ "print-argv", required_argument, 'p', "PROFILE",
	  "print the QEMU argv for PROFILE, one element per line" },
	{ "profiles", required_argument, 'd', "DIR",
	  "profile directory (default " DEFAULT_PROFILE_DIR " as root, "
	  "else $XDG_CONFIG_HOME/qsup/profiles)" },
	{ "networks", required_argument, OPT_NETWORKS, "DIR",
	  "the managed networks' definitions, DIR/NAME.ini (default " DEFAULT_NETWORKS_DIR
	  " as root, else $XDG_CONFIG_HOME/qsup/networks)" },
	{ "run-dir", required_argument, 'r', "DIR",
	  "runtime directory (default " DEFAULT_RUN_DIR " as root, "
	  "else $XDG_RUNTIME_DIR/qsup)" },
	{ "stats-interval", required_argument, OPT_STATS_INTERVAL, "SECONDS",
	  "daemon: gather the guests' stats every SECONDS (default 10)" },
	{ "metrics-listen", required_argument, OPT_METRICS_LISTEN, "ADDR:PORT",
	  "daemon: serve the metrics at http://ADDR:PORT/metrics (default: off; "
	  "PORT alone: 127.0.0.1)" },
	{ "ssh-config", required_argument, OPT_SSH_CONFIG, "FILE",
	  "daemon: the ssh client's configuration for migrate --to ssh:// (ssh -F FILE; "
	  "default: ssh's own, with the identity and known hosts of qsupd's user)" },
	{ "help", no_argument, 'h', NULL, "show this help and exit" },
	{ "version", no_argument, 'V', NULL, "show the version and exit" },
	{ NULL, 0, 0, NULL, NULL },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: qsupd [-f] [-d DIR] [-r DIR] [-s PATH] [options]\n"
	             "       qsupd [-d DIR] [-r DIR] -n [PROFILE...]\n"
	             "       qsupd [-d DIR] [-r DIR] -p PROFILE\n"
	             "PROFILE is a file path, or a guest name looked up as DIR/NAME.ini.\n"
	             "options:\n");
	for (const struct optdef *o = optdefs; o->name; o++) {
		char left[48], sh[8] = "    ";

		if (o->short_name < 256)
			snprintf(sh, sizeof(sh), "-%c, ", o->short_name);
		snprintf(left, sizeof(left), "%s--%s%s%s", sh, o->name, o->arg ? " " : "",
		         o->arg ? o->arg : "");
		fprintf(out, "  %-30s %s\n", left, o->help);
	}
}

static int log_level(const char *s)
{
	enum sv_log_level level;

	if (sv_log_level_parse(s, &level) < 0) {
		fprintf(stderr, "qsupd: --log-level: '%s' is not debug, info, warning "
		        "or error\n", s);
		return -1;
	}
	sv_log_set_level(level);
	return 0;
}

static int log_max_size(const char *s, struct sv_daemon_opts *o)
{
	uint64_t v;

	if (sv_size_parse(s, &v) < 0) {
		fprintf(stderr, "qsupd: --log-max-size: '%s' is not a size (bytes, or with K, M, "
		        "G: 1M; 0 never rotates)\n", s);
		return -1;
	}
	o->log_max = v;
	o->log_max_set = true;
	return 0;
}

static int uid_range(const char *s, struct sv_daemon_opts *d)
{
	if (sv_identity_range_parse(s, &d->uid_first, &d->uid_count) < 0) {
		fprintf(stderr, "qsupd: --uid-range: '%s' is not FIRST-LAST (uids from 1 to "
		        "2147483646, FIRST <= LAST)\n", s);
		return -1;
	}
	return 0;
}

/* --socket-mode: octal, at most 0777, and the owner may read and write (or
 * the daemon's own user could not connect). */
static int socket_mode(const char *s, struct sv_daemon_opts *o)
{
	size_t n = strlen(s);
	unsigned long m = strtoul(s, NULL, 8);

	if (n == 0 || n > 4 || strspn(s, "01234567") != n || m > 0777) {
		fprintf(stderr, "qsupd: --socket-mode: '%s' is not an octal mode from 0600 "
		        "to 0777\n", s);
		return -1;
	}
	if ((m & 0600) != 0600) {
		fprintf(stderr, "qsupd: --socket-mode: %s: the owner needs read and write "
		        "(0600)\n", s);
		return -1;
	}
	o->socket_mode = (mode_t)m;
	return 0;
}

/* --socket-group: a gid, or a group name looked up now. */
static int socket_group(const char *s, struct sv_daemon_opts *o)
{
	size_t n = strlen(s);
	struct group *gr;

	if (n > 0 && strspn(s, "0123456789") == n) {
		unsigned long long g = n <= 10 ? strtoull(s, NULL, 10) : ~0ull;

		if (g >= (gid_t)-1) {
			fprintf(stderr, "qsupd: --socket-group: '%s' is not a valid gid\n", s);
			return -1;
		}
		o->socket_gid = (gid_t)g;
	} else if (n > 0 && (gr = getgrnam(s))) {
		o->socket_gid = gr->gr_gid;
	} else {
		fprintf(stderr, "qsupd: --socket-group: no group named '%s'\n", s);
		return -1;
	}
	o->socket_group = s;
	return 0;
}

static int idle_timeout(const char *s, struct sv_daemon_opts *o)
{
	size_t n = strlen(s);
	unsigned long v = n > 0 && n <= 6 && strspn(s, "0123456789") == n ?
	                  strtoul(s, NULL, 10) : 0;

	if (v < 1 || v > SV_CONTROL_MAX_IDLE_TIMEOUT) {
		fprintf(stderr, "qsupd: --idle-timeout: '%s' is not a number of seconds from "
		        "1 to %d\n", s, SV_CONTROL_MAX_IDLE_TIMEOUT);
		return -1;
	}
	o->idle_timeout = (unsigned)v;
	return 0;
}

static int stats_interval(const char *s, struct sv_daemon_opts *o)
{
	size_t n = strlen(s);
	unsigned long v = n > 0 && n <= 6 && strspn(s, "0123456789") == n ?
	                  strtoul(s, NULL, 10) : 0;

	if (v < 1 || v > SV_STATS_INTERVAL_MAX_S) {
		fprintf(stderr, "qsupd: --stats-interval: '%s' is not a number of seconds from "
		        "1 to %u\n", s, SV_STATS_INTERVAL_MAX_S);
		return -1;
	}
	o->stats_interval = (unsigned)v;
	return 0;
}

static int metrics_listen(const char *s, struct sv_daemon_opts *o)
{
	struct sockaddr_storage ss;
	struct sv_error err = { 0 };

	if (sv_http_parse_listen(s, &ss, &err) < 0) {
		fprintf(stderr, "qsupd: %s\n", err.msg);
		return -1;
	}
	o->metrics_listen = s;
	return 0;
}

static int set_mode(struct opts *o, enum mode m)
{
	if (o->mode_given && o->mode != m) {
		fprintf(stderr, "qsupd: --foreground, --check and --print-argv cannot "
		        "be combined\n");
		return -1;
	}
	o->mode = m;
	o->mode_given = true;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	struct option lopts[sizeof(optdefs) / sizeof(optdefs[0])];
	char shorts[32] = "";
	size_t n = 0;
	int c;

	for (const struct optdef *d = optdefs; d->name; d++, n++) {
		lopts[n] = (struct option){ d->name, d->has_arg, NULL, d->short_name };
		if (d->short_name < 256)
			snprintf(shorts + strlen(shorts), sizeof(shorts) - strlen(shorts),
			         "%c%s", d->short_name, d->has_arg ? ":" : "");
	}
	lopts[n] = (struct option){ NULL, 0, NULL, 0 };
	while ((c = getopt_long(argc, argv, shorts, lopts, NULL)) != -1) {
		int r = 0;

		switch (c) {
		case 'n': r = set_mode(o, MODE_CHECK); break;
		case 'p': r = set_mode(o, MODE_PRINT_ARGV); o->print_target = optarg; break;
		case 'f': r = set_mode(o, MODE_DAEMON); break;
		case 's': o->daemon.socket_path = optarg; break;
		case OPT_SOCKET_MODE: r = socket_mode(optarg, &o->daemon); break;
		case OPT_SOCKET_GROUP: r = socket_group(optarg, &o->daemon); break;
		case OPT_IDLE_TIMEOUT: r = idle_timeout(optarg, &o->daemon); break;
		case OPT_STATS_INTERVAL: r = stats_interval(optarg, &o->daemon); break;
		case OPT_METRICS_LISTEN: r = metrics_listen(optarg, &o->daemon); break;
		case OPT_SSH_CONFIG: {
			/* absolute: ssh runs from wherever qsupd is */
			static char ssh_conf[PATH_MAX];
			if (access(optarg, R_OK) < 0 || !realpath(optarg, ssh_conf)) {
				fprintf(stderr, "qsupd: --ssh-config: %s: %s\n", optarg, strerror(errno));
				r = -1;
			} else {
				sv_ssh_set_config(ssh_conf);
			}
			break;
		}
		case OPT_NO_AUTOSTART: o->daemon.no_autostart = true; break;
		case OPT_STOP_GUESTS: o->daemon.stop_guests_on_exit = true; break;
		case OPT_LOG_LEVEL: r = log_level(optarg); break;
		case OPT_LOG_DIR:
			o->daemon.log_dir = optarg;
			if (!*optarg) {
				fprintf(stderr, "qsupd: --log-dir: an empty path\n");
				r = -1;
			}
			break;
		case OPT_LOG_MAX_SIZE: r = log_max_size(optarg, &o->daemon); break;
		case OPT_STATE_DIR: o->daemon.state_dir = optarg; break;
		case OPT_UID_RANGE: r = uid_range(optarg, &o->daemon); break;
		case 'd': o->profile_dir = optarg; break;
		case OPT_NETWORKS:
			o->networks_dir = optarg;
			if (!*optarg) {
				fprintf(stderr, "qsupd: --networks: an empty path\n");
				r = -1;
			}
			break;
		case 'r': o->run_dir = optarg; break;
		case 'h': o->mode = MODE_HELP; break;
		case 'V': o->mode = MODE_VERSION; break;
		default: r = -1; break;
		}
		if (r < 0)
			return -1;
	}
	o->targets = argv + optind;
	o->ntargets = argc - optind;
	if (o->ntargets && o->mode != MODE_CHECK) {
		fprintf(stderr, "qsupd: unexpected argument '%s'\n", o->targets[0]);
		return -1;
	}
	return 0;
}

/* A PROFILE argument: a path when it holds '/' or ends in ".ini", else a
 * guest name in the profile dir. Returns a malloc'd path. */
static char *profile_path(const struct opts *o, const char *arg)
{
	size_t n = strlen(arg);
	char *p = NULL;

	if (strchr(arg, '/') || (n > 4 && !strcmp(arg + n - 4, ".ini")))
		return strdup(arg);
	if (asprintf(&p, "%s/%s.ini", o->profile_dir, arg) < 0)
		return NULL;
	return p;
}

static void print_lines(FILE *out, const struct sv_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		fprintf(out, "%s\n", sv->v[i]);
}

/* Whether KVM is usable here, probed once; why not in *why. */
static bool kvm_usable(struct sv_error *why)
{
	static int probed = -1;
	static struct sv_error err;

	if (probed < 0)
		probed = sv_host_kvm_probe(NULL, &err) == 0;
	*why = err;
	return probed;
}

/* Load path and build its argv with the host's facts. Prints errors and
 * warnings on stderr. Returns 0 with *a filled, or -1. */
/* --check: p's hot-plug overlay (NAME.d/hotplug.ini), if it has one. */
static int check_overlay(const struct sv_profile *p)
{
	json_t *specs = NULL;
	char *errs = NULL, ov[1024];
	int r = sv_overlay_read(p, &specs, &errs);
	if (errs)
		fputs(errs, stderr);
	if (r == 0 && json_array_size(specs) && sv_overlay_path(p, ov, sizeof(ov)) == 0)
		printf("%s: ok (%zu device%s)\n", ov, json_array_size(specs),
		       json_array_size(specs) == 1 ? "" : "s");
	json_decref(specs);
	free(errs);
	return r;
}

/* --check: p's set overlay (NAME.d/set.ini, qsupctl set --persist), if it
 * has one: each line as set checks it, against the profile and this host's
 * CPUs. */
static int check_set_overlay(const struct sv_profile *p)
{
	struct sv_strv errs = { 0 };
	char path[4096];
	int r = sv_tune_check_overlay(p, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.v[i]);
	if (r == 0 && sv_tune_overlay_path(p, path, sizeof(path)) == 0 && access(path, F_OK) == 0)
		printf("%s: ok\n", path);
	sv_strv_free(&errs);
	return r;
}

/* --check: p's snapshot record (NAME.d/snapshots.json), if it has one:
 * its shape, files and chains. */
static int check_snapshots(const struct sv_profile *p)
{
	json_t *rec = NULL;
	struct sv_error err = { 0 };
	char path[4200], *msgs = NULL;
	if (sv_snaprec_read(p, &rec, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	if (!rec)
		return 0;
	json_t *more = sv_snapshot_hp_disks(p);
	int n = sv_snaprec_validate(p, more, rec, &msgs);
	json_decref(more);
	if (msgs)
		fputs(msgs, stderr);
	free(msgs);
	if (n == 0 && sv_snaprec_path(p, path, sizeof(path)) == 0) {
		size_t k = json_array_size(json_object_get(rec, "snapshots"));
		printf("%s: ok (%zu snapshot%s, current %s)\n", path, k, k == 1 ? "" : "s",
		       sv_jstr(rec, "current", "none"));
	}
	json_decref(rec);
	return n ? -1 : 0;
}

/* --print-argv: the images each disk boots (its snapshot record's active
 * overlay, else its file: tops[i] NULL) and the backing chains qsupd would
 * read at start (an image that cannot be read yet is left without, and
 * said so). */
static struct sv_chain *read_chains(const struct sv_profile *p, char **tops)
{
	struct sv_chain *ch = calloc(p->ndrives + 1, sizeof(*ch));
	struct sv_error err = { 0 };
	json_t *rec = NULL;

	if (sv_snaprec_read(p, &rec, &err) < 0)
		fprintf(stderr, "%s: note: %s\n", p->path, err.msg);
	for (size_t i = 0; rec && i < p->ndrives; i++) {
		json_t *a = sv_snap_disk(&p->drives[i]) ? sv_snaprec_active(rec, p->drives[i].id)
		            : NULL;
		tops[i] = a ? strdup(sv_jstr(a, "file", "")) : NULL;
	}
	json_decref(rec);
	for (size_t i = 0; ch && i < p->ndrives; i++)
		if (p->drives[i].file && !p->drives[i].cdrom &&
		    sv_image_chain(tops[i] ? tops[i] : p->drives[i].file,
		                   tops[i] ? "qcow2" : p->drives[i].format, &ch[i], &err) < 0)
			fprintf(stderr, "%s: note: [disk.%s] %s\n", p->path, p->drives[i].id,
			        err.msg);
	return ch;
}

/* --check: what makes the profile less safe than it could be. */
static void check_warnings(const struct sv_profile *p)
{
	struct stat st;

	if (p->user && (!strcmp(p->user, "root") || !strcmp(p->user, "0")))
		fprintf(stderr, "%s: warning: [qemu] user = root: QEMU runs as root, so a guest "
		        "that escapes QEMU owns the host; leave user out for a per-guest "
		        "identity\n", p->path);
	for (size_t i = 0; i < p->ndrives; i++) {
		const struct sv_drive *d = &p->drives[i];

		if (d->file && stat(d->file, &st) == 0 && S_ISREG(st.st_mode) &&
		    (st.st_mode & S_IROTH))
			fprintf(stderr, "%s: warning: [%s.%s] file: %s is readable by every user, "
			        "so another guest's QEMU could read it (qsupd hands QEMU an fd: "
			        "chmod o-rwx it)\n", p->path, d->cdrom ? "cdrom" : "disk", d->id,
			        d->file);
	}
}

static const char *check_net_bridge(void *ctx, const char *name);
static int line_cmp(const void *a, const void *b);
static int ini_filter(const struct dirent *d);

static int load_and_build(const struct opts *o, const char *path, struct sv_argv *a,
                          struct sv_profile **keep)
{
	struct sv_strv errs = { 0 };
	struct sv_profile *p = NULL;
	struct sv_error err = { 0 }, kvm = { 0 };
	struct sv_chain *chains = NULL;
	struct sv_facts f;
	int r;

	r = sv_profile_load(path, &p, &errs);
	print_lines(stderr, &errs);
	sv_strv_free(&errs);
	if (r < 0)
		return -1;
	r = sv_facts_init(&f, o->run_dir, p->name);
	if (r < 0)
		fprintf(stderr, "%s: run dir %s gives socket paths too long for a unix "
		        "socket; use a shorter --run-dir\n", path, o->run_dir);
	f.kvm_usable = kvm_usable(&kvm);
	f.qmp_fd = SV_FD_QMP;
	f.serial_fd = SV_FD_SERIAL;
	f.net_bridge = check_net_bridge;
	f.net_ctx = (void *)o;
	char **tops = calloc(p->ndrives + 1, sizeof(*tops));
	if (o->mode == MODE_PRINT_ARGV && tops) {
		f.chains = chains = read_chains(p, tops);
		f.tops = (const char *const *)tops;
	}
	if (r == 0 && (r = sv_argv_build(p, &f, a, &err)) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		if (r == -ENODEV)
			fprintf(stderr, "%s: note: %s\n", path, kvm.msg);
	}
	if (r == 0)
		print_lines(stderr, &a->warnings);
	if (r == 0 && o->mode == MODE_CHECK)
		check_warnings(p);
	if (r == 0 && o->mode == MODE_CHECK && ((check_overlay(p) < 0) | (check_snapshots(p) < 0) |
	    (check_set_overlay(p) < 0))) {
		sv_argv_free(a);
		r = -1;
	}
	for (size_t i = 0; chains && i < p->ndrives; i++)
		sv_chain_free(&chains[i]);
	free(chains);
	for (size_t i = 0; tops && i < p->ndrives; i++)
		free(tops[i]);
	free(tops);
	if (keep && r == 0)
		*keep = p;
	else
		sv_profile_free(p);
	return r < 0 ? -1 : 0;
}

/* --check and --print-argv: the network definitions, read once. */
static struct sv_network_def **netdefs;
static size_t nnetdefs;
static bool netdefs_read, netdefs_bad;

static void read_netdefs(const struct opts *o)
{
	struct dirent **ents;
	if (netdefs_read)
		return;
	netdefs_read = true;
	int n = scandir(o->networks_dir, &ents, ini_filter, alphasort);
	for (int i = 0; i < n; i++) {
		char *path = NULL;
		struct sv_network_def *d, **nd;
		struct sv_strv errs = { 0 };
		if (asprintf(&path, "%s/%s", o->networks_dir, ents[i]->d_name) >= 0 &&
		    sv_network_load(path, &d, &errs) == 0) {
			if ((nd = realloc(netdefs, (nnetdefs + 1) * sizeof(*nd)))) {
				netdefs = nd;
				netdefs[nnetdefs++] = d;
			} else {
				sv_network_free(d);
			}
		} else {
			netdefs_bad = true;
		}
		print_lines(stderr, &errs);
		sv_strv_free(&errs);
		free(path);
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
}

static const struct sv_network_def *netdef(const char *name)
{
	for (size_t i = 0; name && i < nnetdefs; i++)
		if (!strcmp(netdefs[i]->name, name))
			return netdefs[i];
	return NULL;
}

static const char *check_net_bridge(void *ctx, const char *name)
{
	const struct sv_network_def *d;
	read_netdefs(ctx);
	d = netdef(name);
	return d ? d->bridge : NULL;
}

/* p's type = network NICs name networks that exist (a MAC two profiles
 * share is profhost.c's to find). */
static int check_profile_nets(const struct opts *o, const struct sv_profile *p)
{
	int r = 0;
	read_netdefs(o);
	for (size_t i = 0; i < p->nnics; i++) {
		const struct sv_nic *n = &p->nics[i];
		if (n->type == SV_NIC_NETWORK && !netdef(n->network)) {
			fprintf(stderr, "%s:%d: [nic.%s] network: no network named %s (no "
			        "%s.ini in %s)\n", p->path, n->line, n->id, n->network,
			        n->network, o->networks_dir);
			r = -1;
		}
	}
	return r;
}

/* The network definitions read for the check, let go; whether any was bad. */
static int check_netdefs_done(void)
{
	for (size_t i = 0; i < nnetdefs; i++)
		sv_network_free(netdefs[i]);
	free(netdefs);
	netdefs = NULL;
	nnetdefs = 0;
	return netdefs_bad;
}

/* The writable disk images of p, as "REALPATH\tNAME [disk.ID]" lines. */
static void add_writable(const struct sv_profile *p, struct sv_strv *w)
{
	char real[PATH_MAX];

	for (size_t i = 0; i < p->ndrives; i++) {
		const struct sv_drive *d = &p->drives[i];

		if (d->file && !d->read_only && realpath(d->file, real))
			sv_strv_pushf(w, "%s\t%s [disk.%s]", real, p->name, d->id);
	}
}

/* One profile: parsed, its argv built, then checked against this host
 * (profhost.h: the files it needs, its bridges) and against the profiles
 * checked before it (VNC displays, forwarded ports, MACs). */
static int check_one(const struct opts *o, const char *path, struct sv_strv *writable,
                     struct sv_profhost_set *claims)
{
	struct sv_strv errs = { 0 }, warns = { 0 };
	struct sv_profile *p = NULL;
	struct sv_argv a;
	size_t bad;

	if (load_and_build(o, path, &a, &p) < 0)
		return -1;
	bad = sv_profhost_check(p, &errs, &warns) + sv_profhost_claim(claims, p, &errs);
	bad += check_profile_nets(o, p) < 0;
	print_lines(stderr, &errs);
	print_lines(stderr, &warns);
	if (!bad)
		printf("%s: ok (%s)\n", path, a.accel == SV_ACCEL_KVM ? "kvm" : "tcg");
	add_writable(p, writable);
	sv_strv_free(&errs);
	sv_strv_free(&warns);
	sv_profile_free(p);
	sv_argv_free(&a);
	return bad ? -1 : 0;
}

static int line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Writable images that two profiles share: QEMU's image locking lets only
 * one of the two guests run at a time (never locking=off). */
static void report_shared(struct sv_strv *w)
{
	if (w->n > 1)
		qsort(w->v, w->n, sizeof(*w->v), line_cmp);
	for (size_t i = 1; i < w->n; i++) {
		size_t la = strcspn(w->v[i - 1], "\t"), lb = strcspn(w->v[i], "\t");

		if (la == lb && !strncmp(w->v[i - 1], w->v[i], la))
			fprintf(stderr, "warning: %.*s is a writable disk of both %s and %s: "
			        "only one of them can run at a time (QEMU's image lock)\n",
			        (int)la, w->v[i], w->v[i - 1] + la + 1, w->v[i] + lb + 1);
	}
}

static int ini_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 4 && !strcmp(d->d_name + n - 4, ".ini");
}

static int check_dir(const struct opts *o)
{
	struct dirent **ents;
	struct sv_strv writable = { 0 };
	struct sv_profhost_set claims = { 0 };
	int n = scandir(o->profile_dir, &ents, ini_filter, alphasort), bad = 0;

	if (n < 0) {
		fprintf(stderr, "qsupd: %s: %s\n", o->profile_dir, strerror(errno));
		return 1;
	}
	if (n == 0)
		printf("%s: no profiles (*.ini)\n", o->profile_dir);
	for (int i = 0; i < n; i++) {
		char *path = NULL;

		if (asprintf(&path, "%s/%s", o->profile_dir, ents[i]->d_name) < 0 ||
		    check_one(o, path, &writable, &claims) < 0)
			bad = 1;
		free(path);
		free(ents[i]);
	}
	free(ents);
	report_shared(&writable);
	sv_strv_free(&writable);
	sv_profhost_set_free(&claims);
	return check_netdefs_done() || bad;
}

static int do_check(const struct opts *o)
{
	struct sv_strv writable = { 0 };
	struct sv_profhost_set claims = { 0 };
	int bad = 0;

	if (!o->ntargets)
		return check_dir(o);
	for (int i = 0; i < o->ntargets; i++) {
		char *path = profile_path(o, o->targets[i]);

		if (!path || check_one(o, path, &writable, &claims) < 0)
			bad = 1;
		free(path);
	}
	report_shared(&writable);
	sv_strv_free(&writable);
	sv_profhost_set_free(&claims);
	return check_netdefs_done() || bad;
}

static int do_print_argv(const struct opts *o)
{
	char *path = profile_path(o, o->print_target);
	struct sv_argv a;
	int r = path ? load_and_build(o, path, &a, NULL) : -1;
	static const char *const kinds[] = { "file", "read", "tap", "bridge", "vhost" };

	free(path);
	if (r < 0)
		return 1;
	for (size_t i = 0; i < a.argc; i++)
		printf("%s\n", a.argv[i]);
	/* What qsupd opens and hands QEMU, on stderr: the argv names fds. */
	for (size_t i = 0; i < a.nfds; i++) {
		const struct sv_fd_need *n = &a.fds[i];
		int acc = n->flags & O_ACCMODE;

		fprintf(stderr, "# fd %d: %s: %s %s%s\n", n->fd, n->what, kinds[n->kind],
		        n->path ? n->path : n->ifname ? n->ifname : n->bridge,
		        n->kind != SV_FD_FILE ? "" : acc == O_RDWR ? " (read-write)"
		        : acc == O_WRONLY ? " (append)" : " (read-only)");
	}
	sv_argv_free(&a);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* Defaults for a user other than root, as systemd --user does: profiles
 * under $XDG_CONFIG_HOME (~/.config), runtime files under $XDG_RUNTIME_DIR.
 * Returns -1 when there is no runtime dir to use. */
static int user_defaults(struct opts *o, char *pdir, char *rdir, size_t size)
{
	const char *cfg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	const char *run = getenv("XDG_RUNTIME_DIR");
	if (cfg && *cfg)
		snprintf(pdir, size, "%s/qsup/profiles", cfg);
	else
		snprintf(pdir, size, "%s/.config/qsup/profiles", home ? home : "");
	if (o->profile_dir == NULL)
		o->profile_dir = pdir;
	if (o->run_dir == NULL) {
		if ((!run || !*run) && o->mode != MODE_CHECK) {
			fprintf(stderr, "qsupd: XDG_RUNTIME_DIR is not set; give --run-dir\n");
			return -1;
		}
		if (run && *run)
			snprintf(rdir, size, "%s/qsup", run);
		else   /* --check only needs a plausible one */
			snprintf(rdir, size, "/run/user/%u/qsup", (unsigned)geteuid());
		o->run_dir = rdir;
	}
	return 0;
}

/* The state dir when none is given: DEFAULT_STATE_DIR for root, else
 * $XDG_STATE_HOME/qsup (~/.local/state/qsup). */
static const char *state_dir_default(char *buf, size_t size)
{
	const char *st = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	if (geteuid() == 0)
		return DEFAULT_STATE_DIR;
	if (st && *st)
		snprintf(buf, size, "%s/qsup", st);
	else
		snprintf(buf, size, "%s/.local/state/qsup", home ? home : "");
	return buf;
}

int main(int argc, char **argv)
{
	struct opts o = { .mode = MODE_DAEMON };
	char pdir[4096], rdir[4096], sdir[4096], ldir[4200], ndir[4096];

	if (parse_opts(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	if (!o.networks_dir && geteuid() == 0) {
		o.networks_dir = DEFAULT_NETWORKS_DIR;
	} else if (!o.networks_dir) {
		const char *cfg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
		if (cfg && *cfg)
			snprintf(ndir, sizeof(ndir), "%s/qsup/networks", cfg);
		else
			snprintf(ndir, sizeof(ndir), "%s/.config/qsup/networks", home ? home : "");
		o.networks_dir = ndir;
	}
	if (geteuid() == 0) {
		if (!o.profile_dir)
			o.profile_dir = DEFAULT_PROFILE_DIR;
		if (!o.run_dir)
			o.run_dir = DEFAULT_RUN_DIR;
	} else if ((!o.profile_dir || !o.run_dir) && o.mode != MODE_HELP &&
	           o.mode != MODE_VERSION && user_defaults(&o, pdir, rdir, sizeof(pdir)) < 0) {
		return 2;
	}
	switch (o.mode) {
	case MODE_HELP:
		usage(stdout);
		return 0;
	case MODE_VERSION:
		printf("qsupd %s\n", SV_VERSION);
		return 0;
	case MODE_CHECK:
		return do_check(&o);
	case MODE_PRINT_ARGV:
		return do_print_argv(&o);
	case MODE_DAEMON:
		break;
	}
	o.daemon.profile_dir = o.profile_dir;
	o.daemon.networks_dir = o.networks_dir;
	o.daemon.run_dir = o.run_dir;
	if (!o.daemon.state_dir)
		o.daemon.state_dir = state_dir_default(sdir, sizeof(sdir));
	if (!o.daemon.log_dir && geteuid() == 0) {
		o.daemon.log_dir = DEFAULT_LOG_DIR;
	} else if (!o.daemon.log_dir) {
		snprintf(ldir, sizeof(ldir), "%s/log", o.daemon.state_dir);
		o.daemon.log_dir = ldir;
	}
	if (!o.daemon.log_max_set)
		o.daemon.log_max = SV_GLOG_MAX_DEFAULT;
	sv_log_open();   /* the journal, when stderr is its stream */
	return sv_daemon_main(&o.daemon);
}
