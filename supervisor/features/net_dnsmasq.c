/* The networks' dnsmasq and its leases (netmgr_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "netmgr_int.h"
#include "sysutil.h"

/* ---- dnsmasq ---- */

static void record_work(uv_work_t *w)
{
	struct net_job *j = w->data;
	struct sv_net *n = j->n;
	char text[128];
	unsigned long long st = sv_proc_starttime(j->pid);
	char a[PATH_MAX + 32], b[PATH_MAX + 32];
	int len = snprintf(text, sizeof(text), "{\"pid\": %d, \"starttime\": %llu}\n",
	                   j->pid, st);
	snprintf(a, sizeof(a), "%s/.dnsmasq.json.tmp", n->dir);
	snprintf(b, sizeof(b), "%s/dnsmasq.json", n->dir);
	errno = 0;
	int fd = open(a, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, (size_t)len) != len || fsync(fd) < 0 ||
	    rename(a, b) < 0)
		j->rc = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
	j->starttime = st;
}

static void became_up(struct sv_net *n)
{
	const struct sv_network_def *d = n->def;
	char sub[24];
	if (n->state != NET_STARTING)
		return;
	n->state = NET_UP;
	sv_network_subnet(d, sub, sizeof(sub));
	sv_log(SV_LOG_INFO, NULL, "network %s: up (%s, bridge %s, %s, table ip qsup-%s)",
	       d->name, sv_net_mode_name(d->mode), d->bridge, sub, d->name);
	nm_leases_read(n);
	nm_call_waiters(n, 0, NULL);
}

static void record_done(uv_work_t *w, int status)
{
	struct net_job *j = w->data;
	struct sv_net *n = j->n;
	(void)status;
	if (!nm_job_back(j))
		return;
	if (n->pid == j->pid)
		n->starttime = j->starttime;
	if (j->rc)
		sv_log(SV_LOG_WARN, NULL, "network %s: cannot record dnsmasq's pid in %s: %s "
		       "(a qsupd restart will not nm_adopt_dnsmasq it)", n->def->name, n->dir,
		       strerror(j->rc));
	free(j);
	became_up(n);
}

static void restart_fire(uv_timer_t *t)
{
	struct sv_net *n = t->data;
	if (n->state == NET_UP && !n->pid)
		nm_spawn_dnsmasq(n);
}

/* dnsmasq ended: restart it while the network is up, else the stop goes on. */
static void dnsmasq_gone(struct sv_net *n, const char *how)
{
	n->pid = 0;
	n->starttime = 0;
	if (n->closing)
		return;
	if (n->state == NET_STARTING) {
		char m[200];
		snprintf(m, sizeof(m), "dnsmasq %s at once (its messages are in qsupd's log)", how);
		nm_fail(n, -EIO, m);
		return;
	}
	if (n->state != NET_UP)
		return;
	n->restarts++;
	uint64_t delay = n->restarts > 5 ? 10000 : 1000;
	sv_log(SV_LOG_WARN, NULL, "network %s: dnsmasq %s; restarting it in %llu s",
	       n->def->name, how, (unsigned long long)(delay / 1000));
	if (!n->restart) {
		n->restart = calloc(1, sizeof(*n->restart));
		if (!n->restart)
			return;
		uv_timer_init(n->m->loop, n->restart);
		n->restart->data = n;
	}
	uv_timer_start(n->restart, restart_fire, delay, 0);
}


static void dnsmasq_exit(uv_process_t *p, int64_t status, int sig)
{
	struct sv_net *n = p->data;
	char how[64];
	n->proc = NULL;
	uv_close((uv_handle_t *)p, nm_close_free);
	snprintf(how, sizeof(how), "ended with %s %d", sig ? "signal" : "status",
	         sig ? sig : (int)status);
	if (n->state == NET_STOPPING) {
		n->pid = 0;
		nm_down_after_dnsmasq(n);
		return;
	}
	dnsmasq_gone(n, how);
}

static void pidfd_ready(uv_poll_t *h, int status, int events)
{
	struct sv_net *n = h->data;
	(void)status;
	(void)events;
	uv_poll_stop(h);
	uv_close((uv_handle_t *)h, nm_close_free);
	n->pidpoll = NULL;
	close(n->pidfd);
	n->pidfd = -1;
	if (n->state == NET_STOPPING) {
		n->pid = 0;
		nm_down_after_dnsmasq(n);
		return;
	}
	dnsmasq_gone(n, "ended (adopted; its status is its parent's)");
}

void nm_spawn_dnsmasq(struct sv_net *n)
{
	const struct sv_network_def *d = n->def;
	char iface[40], listen[40], range[80], lease[PATH_MAX + 32], pidf[PATH_MAX + 32];
	char a[16], s[16], e[16], mask[16];
	sv_ip4_str(d->addr, a, sizeof(a));
	sv_ip4_str(d->range_start, s, sizeof(s));
	sv_ip4_str(d->range_end, e, sizeof(e));
	sv_ip4_str(sv_ip4_mask(d->prefix), mask, sizeof(mask));
	snprintf(iface, sizeof(iface), "--interface=%s", d->bridge);
	snprintf(listen, sizeof(listen), "--listen-address=%s", a);
	snprintf(range, sizeof(range), "--dhcp-range=%s,%s,%s,1h", s, e, mask);
	snprintf(lease, sizeof(lease), "--dhcp-leasefile=%s/leases", n->dir);
	snprintf(pidf, sizeof(pidf), "--pid-file=%s/dnsmasq.pid", n->dir);
	const char *argv[24] = {
		SV_DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--bind-interfaces",
		iface, listen, "--except-interface=lo", range, lease, pidf, "--no-hosts",
		"--dhcp-no-override", "--strict-order", "--dhcp-authoritative",
		"--log-facility=-",
	};
	size_t i = 15;
	if (!d->dns) {
		argv[i++] = "--port=0";
		argv[i++] = "--dhcp-option=6";  /* no DNS server offered */
	}
	if (d->mode == SV_NET_ISOLATED)
		argv[i++] = "--dhcp-option=3";  /* no router: nowhere to go */
	argv[i] = NULL;
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = 2 },
		{ .flags = UV_INHERIT_FD, .data.fd = 2 },
	};
	uv_process_options_t o = { .exit_cb = dnsmasq_exit, .file = argv[0],
	                           .args = (char **)argv, .stdio = stdio, .stdio_count = 3,
	                           .flags = UV_PROCESS_DETACHED };
	uv_process_t *p = calloc(1, sizeof(*p));
	if (!p) {
		nm_fail(n, -ENOMEM, "out of memory");
		return;
	}
	p->data = n;
	int r = uv_spawn(n->m->loop, p, &o);
	if (r < 0) {
		char m[200];
		uv_close((uv_handle_t *)p, nm_close_free);
		snprintf(m, sizeof(m), "cannot run " SV_DNSMASQ ": %s (install dnsmasq-base)",
		         uv_strerror(r));
		if (n->state == NET_STARTING)
			nm_fail(n, r, m);
		else
			sv_log(SV_LOG_ERR, NULL, "network %s: %s", n->def->name, m);
		return;
	}
	n->proc = p;
	n->pid = p->pid;
	sv_log(SV_LOG_INFO, NULL, "network %s: dnsmasq pid %d on %s (DHCP %s-%s%s)",
	       d->name, n->pid, d->bridge, s, e, d->dns ? ", DNS" : "");
	/* up once its record is written: a qsupd killed right after the
	 * answer still leaves one for the next to nm_adopt_dnsmasq */
	if (nm_queue_job(n, JOB_RECORD, n->pid, record_work, record_done) < 0) {
		sv_log(SV_LOG_WARN, NULL, "network %s: cannot record dnsmasq's pid",
		       d->name);
		became_up(n);
	}
}

/* ---- leases ---- */

static void leases_work(uv_work_t *w)
{
	struct net_job *j = w->data;
	char path[PATH_MAX + 16], line[512];
	snprintf(path, sizeof(path), "%s/leases", j->n->dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	size_t cap = 0;
	while (fgets(line, sizeof(line), f)) {
		struct lease l = { 0 };
		char mac[32], ip[64], host[256];
		unsigned b[6];
		if (sscanf(line, "%lld %31s %63s %255s", &l.expiry, mac, ip, host) != 4 ||
		    sscanf(mac, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4],
		           &b[5]) != 6 || strlen(ip) >= sizeof(l.ip))
			continue;
		for (int i = 0; i < 6; i++)
			l.mac[i] = (uint8_t)b[i];
		snprintf(l.ip, sizeof(l.ip), "%.*s", (int)sizeof(l.ip) - 1, ip);   /* fits: checked */
		snprintf(l.host, sizeof(l.host), "%.63s", strcmp(host, "*") ? host : "");
		if (j->nleases == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct lease *nl = realloc(j->leases, nc * sizeof(*nl));
			if (!nl)
				break;
			j->leases = nl;
			cap = nc;
		}
		j->leases[j->nleases++] = l;
	}
	fclose(f);
}

static void leases_done(uv_work_t *w, int status)
{
	struct net_job *j = w->data;
	struct sv_net *n = j->n;
	(void)status;
	if (!nm_job_back(j))
		return;
	n->reading = false;
	if (n->state == NET_UP || n->state == NET_STARTING) {
		free(n->leases);
		n->leases = j->leases;
		n->nleases = j->nleases;
	} else {
		free(j->leases);
	}
	free(j);
	if (n->reread) {
		n->reread = false;
		nm_leases_read(n);
	}
}

static void leases_changed(uv_fs_event_t *h, const char *file, int events, int status)
{
	struct sv_net *n = h->data;
	(void)events;
	if (status == 0 && file && !strcmp(file, "leases"))
		nm_leases_read(n);
}

void nm_leases_read(struct sv_net *n)
{
	if (n->def->mode == SV_NET_BRIDGE)
		return;
	if (!n->watch) {
		n->watch = calloc(1, sizeof(*n->watch));
		if (n->watch) {
			uv_fs_event_init(n->m->loop, n->watch);
			n->watch->data = n;
			if (uv_fs_event_start(n->watch, leases_changed, n->dir, 0) < 0) {
				uv_close((uv_handle_t *)n->watch, nm_close_free);
				n->watch = NULL;
			}
		}
	}
	if (n->reading) {
		n->reread = true;
		return;
	}
	if (nm_queue_job(n, JOB_LEASES, 0, leases_work, leases_done) == 0)
		n->reading = true;
}

const char *sv_net_lease_ip(const struct sv_net *n, const uint8_t mac[6])
{
	const char *ip = NULL;
	long long best = -1;
	for (size_t i = 0; i < n->nleases; i++)
		if (!memcmp(n->leases[i].mac, mac, 6) && n->leases[i].expiry > best) {
			best = n->leases[i].expiry;
			ip = n->leases[i].ip;
		}
	return ip;
}

/* ---- adopting a running network ---- */

/* Is pid the dnsmasq of network n (its command line names our lease file)? */
static bool is_our_dnsmasq(const struct sv_net *n, int pid)
{
	char path[64], buf[4096], want[PATH_MAX + 32];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return false;
	buf[len] = '\0';
	snprintf(want, sizeof(want), "--dhcp-leasefile=%s/leases", n->dir);
	if (strcmp(buf, SV_DNSMASQ))
		return false;
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1)
		if (!strcmp(buf + i, want))
			return true;
	return false;
}

/* At load: a dnsmasq.json left by an earlier qsupd. Adopt its dnsmasq when
 * it is the same process (pid, start time, command line); otherwise, with
 * the bridge still there, the network comes up again at autostart. */
void nm_adopt_dnsmasq(struct sv_net *n, bool *restart)
{
	char path[PATH_MAX + 32], buf[256];
	int pid = 0;
	unsigned long long st = 0;
	*restart = false;
	snprintf(path, sizeof(path), "%s/dnsmasq.json", n->dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return;
	buf[len] = '\0';
	if (sscanf(buf, "{\"pid\": %d, \"starttime\": %llu}", &pid, &st) != 2 || pid <= 0) {
		sv_log(SV_LOG_WARN, NULL, "network %s: %s: not a record qsupd wrote; ignored",
		       n->def->name, path);
		return;
	}
	if (sv_pid_alive(pid) && sv_proc_starttime(pid) == st && is_our_dnsmasq(n, pid)) {
		int pfd = pidfd_open(pid, 0);
		n->pidpoll = pfd >= 0 ? calloc(1, sizeof(*n->pidpoll)) : NULL;
		if (n->pidpoll && uv_poll_init(n->m->loop, n->pidpoll, pfd) == 0) {
			n->pidpoll->data = n;
			uv_poll_start(n->pidpoll, UV_READABLE, pidfd_ready);
			n->pidfd = pfd;
			n->pid = pid;
			n->starttime = st;
			n->state = NET_UP;
			sv_log(SV_LOG_INFO, NULL, "network %s: adopted its running dnsmasq (pid "
			       "%d); bridge %s and table ip qsup-%s left as they are",
			       n->def->name, pid, n->def->bridge, n->def->name);
			nm_leases_read(n);
			return;
		}
		free(n->pidpoll);
		n->pidpoll = NULL;
		if (pfd >= 0)
			close(pfd);
	}
	sv_log(SV_LOG_WARN, NULL, "network %s: its dnsmasq (pid %d) is gone; bringing the "
	       "network up again", n->def->name, pid);
	*restart = true;
}

