/* The networks qsupd manages: see netmgr.h. */
#include <arpa/inet.h>
#include <dirent.h>
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
#include "netlink.h"
#include "netmgr_int.h"
#include "sysutil.h"


const char *const nm_state_names[] = { "down", "starting", "up", "stopping" };

/* ---- small helpers ---- */

void nm_close_free(uv_handle_t *h)
{
	free(h);
}

void nm_call_waiters(struct sv_net *n, int rc, const char *msg)
{
	struct net_wait *w = n->waiters;
	n->waiters = NULL;
	while (w) {
		struct net_wait *next = w->next;
		w->cb(w->arg, rc, msg);
		free(w);
		w = next;
	}
}

static int add_waiter(struct sv_net *n, sv_net_cb cb, void *arg)
{
	struct net_wait *w = calloc(1, sizeof(*w)), **p = &n->waiters;
	if (!w)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	while (*p)
		p = &(*p)->next;
	*p = w;
	return 0;
}

int nm_queue_job(struct sv_net *n, int kind, int pid, uv_work_cb work,
                     uv_after_work_cb after)
{
	struct net_job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->n = n;
	j->kind = kind;
	j->pid = pid;
	j->work.data = j;
	int r = uv_queue_work(n->m->loop, &j->work, work, after);
	if (r < 0) {
		free(j);
		return r;
	}
	n->m->jobs++;
	return 0;
}

/* The job is back on the loop: false when the manager is going away (the
 * job is then dropped). */
bool nm_job_back(struct net_job *j)
{
	struct sv_netmgr *m = j->n->m;
	m->jobs--;
	if (m->freeing) {
		free(j->leases);
		free(j);
		if (!m->jobs)
			sv_netmgr_free(m);
		return false;
	}
	return true;
}

/* ---- the rules ---- */

/* The nft file that makes qsup-NAME anew (an empty table, deleted, then
 * the real one: one transaction, whatever was there), or that only
 * deletes it (down). */
static int write_nft(const struct sv_net *n, bool down, struct sv_error *err)
{
	const struct sv_network_def *d = n->def;
	char path[PATH_MAX + 16], sub[24];
	snprintf(path, sizeof(path), "%s/nft.conf", n->dir);
	FILE *f = fopen(path, "we");
	if (!f)
		return sv_error_set(err, -errno, "%s: %s", path, strerror(errno));
	sv_network_subnet(d, sub, sizeof(sub));
	fprintf(f, "# written by qsupd for the network %s; qsupd owns this table\n"
	        "table ip qsup-%s {}\ndelete table ip qsup-%s\n", d->name, d->name, d->name);
	if (!down) {
		fprintf(f, "table ip qsup-%s {\n", d->name);
		if (d->mode == SV_NET_NAT) {
			char up[48] = "";
			if (d->uplink[0])
				snprintf(up, sizeof(up), " oifname \"%s\"", d->uplink);
			fprintf(f, "\tchain postrouting {\n"
			        "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
			        "\t\tip saddr %s ip daddr != %s%s masquerade\n\t}\n",
			        sub, sub, up);
			fprintf(f, "\tchain forward {\n"
			        "\t\ttype filter hook forward priority filter; policy accept;\n"
			        "\t\tiifname \"%s\" oifname \"%s\" accept\n"
			        "\t\tiifname \"%s\" ip saddr %s%s accept\n"
			        "\t\toifname \"%s\" ip daddr %s ct state established,related accept\n"
			        "\t\tiifname \"%s\" drop\n\t\toifname \"%s\" drop\n\t}\n",
			        d->bridge, d->bridge, d->bridge, sub, up, d->bridge, sub,
			        d->bridge, d->bridge);
		} else {
			fprintf(f, "\tchain forward {\n"
			        "\t\ttype filter hook forward priority filter; policy accept;\n"
			        "\t\tiifname \"%s\" oifname \"%s\" accept\n"
			        "\t\tiifname \"%s\" drop\n\t\toifname \"%s\" drop\n\t}\n",
			        d->bridge, d->bridge, d->bridge, d->bridge);
		}
		fprintf(f, "}\n");
	}
	if (fclose(f) != 0)
		return sv_error_set(err, -EIO, "%s: %s", path, strerror(errno));
	return 0;
}

/* ---- up, on the thread pool ---- */

static void up_work(uv_work_t *w)
{
	struct net_job *j = w->data;
	struct sv_net *n = j->n;
	const struct sv_network_def *d = n->def;
	struct sv_nl_link l;
	char why[128];
	int r;

	if ((r = sv_mkdir_p(n->dir, 0755)) < 0) {
		j->rc = sv_error_set(&j->err, r, "%s: %s", n->dir, strerror(-r));
		return;
	}
	r = sv_nl_link_get(d->bridge, &l, &j->err);
	if (d->mode == SV_NET_BRIDGE) {
		if (r == -ENODEV)
			j->rc = sv_error_set(&j->err, r, "bridge %s: no such bridge (mode = "
			                     "bridge joins an existing bridge)", d->bridge);
		else if (r == 0 && !l.bridge)
			j->rc = sv_error_set(&j->err, -EOPNOTSUPP, "bridge %s: %s is not a "
			                     "bridge", d->bridge, d->bridge);
		else
			j->rc = r;
		return;
	}
	if (r == 0 && !l.bridge) {
		j->rc = sv_error_set(&j->err, -EEXIST, "bridge %s: an interface of that "
		                     "name exists and is not a bridge", d->bridge);
		return;
	}
	if (r < 0 && r != -ENODEV) {
		j->rc = r;
		return;
	}
	bool exists = r == 0;
	uint32_t m = sv_ip4_mask(d->prefix);
	r = sv_nl_route_conflict(d->addr & m, d->prefix, exists ? l.index : 0, why,
	                         sizeof(why), &j->err);
	if (r > 0) {
		char sub[24];
		sv_network_subnet(d, sub, sizeof(sub));
		j->rc = sv_error_set(&j->err, -EADDRINUSE, "the subnet %s collides with the "
		                     "host route %s; choose another address in %s",
		                     sub, why, d->path);
		return;
	}
	if (r < 0) {
		j->rc = r;
		return;
	}
	if (!exists && (j->rc = sv_nl_bridge_add(d->bridge, &j->err)) < 0)
		return;
	if ((j->rc = sv_nl_link_get(d->bridge, &l, &j->err)) < 0)
		return;
	if ((j->rc = sv_nl_addr_add(l.index, d->addr, d->prefix, &j->err)) < 0) {
		sv_error_wrap(&j->err, "bridge %s", d->bridge);
		return;
	}
	char what[32];
	snprintf(what, sizeof(what), "bridge %s", d->bridge);
	if ((j->rc = sv_nl_link_set(l.index, what, NULL, 0, 0, true, &j->err)) < 0)
		return;
	if (d->mode == SV_NET_NAT) {
		char v = '0';
		int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDWR | O_CLOEXEC);
		if (fd < 0 || pread(fd, &v, 1, 0) != 1 ||
		    (v != '1' && pwrite(fd, "1\n", 2, 0) != 2)) {
			j->rc = sv_error_set(&j->err, -errno, "cannot turn on IPv4 forwarding "
			                     "(/proc/sys/net/ipv4/ip_forward: %s), which a nat "
			                     "network needs; set net.ipv4.ip_forward = 1 with "
			                     "sysctl (/etc/sysctl.d/)", strerror(errno));
			if (fd >= 0)
				close(fd);
			return;
		}
		close(fd);
		j->forward_on = v != '1';
	}
	j->rc = write_nft(n, false, &j->err);
}

static void nft_closed(uv_handle_t *h)
{
	free(h);
}

static void nft_exit(uv_process_t *p, int64_t status, int sig)
{
	struct sv_net *n = p->data;
	struct sv_netmgr *m = n->m;
	bool down = n->nft_down;
	n->nft = NULL;
	n->busy = false;
	uv_close((uv_handle_t *)p, nft_closed);
	m->jobs--;   /* nft counts as a job: the manager outlives it */
	if (m->freeing) {
		if (!m->jobs)
			sv_netmgr_free(m);
		return;
	}
	char cmd[PATH_MAX + 40];
	snprintf(cmd, sizeof(cmd), SV_NFT " -f %s/nft.conf", n->dir);
	if (down) {
		if (status || sig)
			sv_log(SV_LOG_WARN, NULL, "network %s: %s ended with %s %d (its "
			       "message is above)", n->def->name, cmd, sig ? "signal" : "status",
			       sig ? sig : (int)status);
		n->state = NET_DOWN;
		sv_log(SV_LOG_INFO, NULL, "network %s: down (bridge %s, dnsmasq and table "
		       "ip qsup-%s gone)", n->def->name, n->def->bridge, n->def->name);
		nm_call_waiters(n, 0, NULL);
		return;
	}
	if (status || sig) {
		char msg[PATH_MAX + 100];
		snprintf(msg, sizeof(msg), "%s ended with %s %d (its message is in qsupd's log)",
		         cmd, sig ? "signal" : "status", sig ? sig : (int)status);
		nm_fail(n, -EIO, msg);
		return;
	}
	nm_spawn_dnsmasq(n);
}

/* nft -f DIR/nft.conf; its stderr goes to ours (the log). */
static int spawn_nft(struct sv_net *n, bool down)
{
	char file[PATH_MAX + 16];
	snprintf(file, sizeof(file), "%s/nft.conf", n->dir);
	char *argv[] = { (char *)SV_NFT, (char *)"-f", file, NULL };
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE }, { .flags = UV_IGNORE },
		{ .flags = UV_INHERIT_FD, .data.fd = 2 },
	};
	uv_process_options_t o = { .exit_cb = nft_exit, .file = argv[0], .args = argv,
	                           .stdio = stdio, .stdio_count = 3 };
	uv_process_t *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->data = n;
	int r = uv_spawn(n->m->loop, p, &o);
	if (r < 0) {
		uv_close((uv_handle_t *)p, nft_closed);
		return r;
	}
	n->nft = p;
	n->nft_down = down;
	n->busy = true;
	n->m->jobs++;
	return 0;
}

static void up_done(uv_work_t *w, int status)
{
	struct net_job *j = w->data;
	struct sv_net *n = j->n;
	if (!nm_job_back(j))
		return;
	n->busy = false;
	int rc = status < 0 ? status : j->rc;
	if (rc < 0) {
		nm_fail(n, rc, status < 0 ? uv_strerror(status) : j->err.msg);
		free(j);
		return;
	}
	if (j->forward_on)
		sv_log(SV_LOG_INFO, NULL, "network %s: turned on IPv4 forwarding "
		       "(/proc/sys/net/ipv4/ip_forward = 1) for NAT", n->def->name);
	free(j);
	if (n->def->mode == SV_NET_BRIDGE) {
		n->state = NET_UP;
		sv_log(SV_LOG_INFO, NULL, "network %s: up (the existing bridge %s)",
		       n->def->name, n->def->bridge);
		nm_call_waiters(n, 0, NULL);
		return;
	}
	int r = spawn_nft(n, false);
	if (r < 0)
		nm_fail(n, r, "cannot spawn " SV_NFT);
}

void nm_fail(struct sv_net *n, int rc, const char *msg)
{
	char m[600];
	snprintf(m, sizeof(m), "network %s: %s", n->def->name, msg);
	snprintf(n->error, sizeof(n->error), "%s", msg);
	sv_log(SV_LOG_ERR, NULL, "%s", m);
	n->state = NET_DOWN;
	nm_call_waiters(n, rc, m);
}

void sv_net_up(struct sv_net *n, sv_net_cb cb, void *arg)
{
	if (n->state == NET_UP) {
		cb(arg, 0, NULL);
		return;
	}
	if (n->state == NET_STOPPING) {
		char m[200];
		snprintf(m, sizeof(m), "network %s: it is being stopped; start it again "
		         "once it is down", n->def->name);
		cb(arg, -EBUSY, m);
		return;
	}
	if (add_waiter(n, cb, arg) < 0) {
		cb(arg, -ENOMEM, "out of memory");
		return;
	}
	if (n->state == NET_STARTING)
		return;
	n->state = NET_STARTING;
	n->error[0] = '\0';
	n->restarts = 0;
	sv_log(SV_LOG_INFO, NULL, "network %s: starting (%s, bridge %s)", n->def->name,
	       sv_net_mode_name(n->def->mode), n->def->bridge);
	n->busy = true;
	int r = nm_queue_job(n, JOB_UP, 0, up_work, up_done);
	if (r < 0) {
		n->busy = false;
		nm_fail(n, r, "cannot queue work");
	}
}

/* ---- down ---- */

static void down_work(uv_work_t *w)
{
	struct net_job *j = w->data;
	struct sv_net *n = j->n;
	char path[PATH_MAX + 32];
	int r = sv_nl_link_del(n->def->bridge, &j->err);
	if (r < 0 && r != -ENODEV) {
		j->rc = r;
		return;
	}
	snprintf(path, sizeof(path), "%s/dnsmasq.json", n->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/dnsmasq.pid", n->dir);
	unlink(path);
	j->rc = write_nft(n, true, &j->err);
}

static void down_done(uv_work_t *w, int status)
{
	struct net_job *j = w->data;
	struct sv_net *n = j->n;
	if (!nm_job_back(j))
		return;
	n->busy = false;
	int rc = status < 0 ? status : j->rc;
	if (rc < 0) {
		char m[600];
		snprintf(m, sizeof(m), "network %s: %s", n->def->name,
		         status < 0 ? uv_strerror(status) : j->err.msg);
		free(j);
		sv_log(SV_LOG_ERR, NULL, "%s", m);
		n->state = NET_DOWN;
		nm_call_waiters(n, rc, m);
		return;
	}
	free(j);
	int r = spawn_nft(n, true);
	if (r < 0) {
		n->state = NET_DOWN;
		nm_call_waiters(n, r, "cannot spawn " SV_NFT);
	}
}

static void stop_watch(struct sv_net *n)
{
	if (n->watch) {
		uv_fs_event_stop(n->watch);
		uv_close((uv_handle_t *)n->watch, nm_close_free);
		n->watch = NULL;
	}
}

void nm_down_after_dnsmasq(struct sv_net *n)
{
	stop_watch(n);
	free(n->leases);
	n->leases = NULL;
	n->nleases = 0;
	if (n->def->mode == SV_NET_BRIDGE) {
		n->state = NET_DOWN;
		nm_call_waiters(n, 0, NULL);
		return;
	}
	n->busy = true;
	if (nm_queue_job(n, JOB_DOWN, 0, down_work, down_done) < 0) {
		n->busy = false;
		n->state = NET_DOWN;
		nm_call_waiters(n, -ENOMEM, "cannot queue work");
	}
}

void sv_net_down(struct sv_net *n, sv_net_cb cb, void *arg)
{
	if (n->state == NET_STARTING || n->state == NET_STOPPING) {
		char m[200];
		snprintf(m, sizeof(m), "network %s is %s; try again once it is done",
		         n->def->name, nm_state_names[n->state]);
		cb(arg, -EBUSY, m);
		return;
	}
	if (add_waiter(n, cb, arg) < 0) {
		cb(arg, -ENOMEM, "out of memory");
		return;
	}
	n->state = NET_STOPPING;
	sv_log(SV_LOG_INFO, NULL, "network %s: stopping", n->def->name);
	if (n->restart)
		uv_timer_stop(n->restart);
	if (n->proc) {
		uv_process_kill(n->proc, SIGTERM);
		return;   /* dnsmasq_exit goes on */
	}
	if (n->pidfd >= 0) {
		if (pidfd_send_signal(n->pidfd, SIGTERM, NULL, 0) == 0)
			return;   /* pidfd_ready goes on */
		uv_poll_stop(n->pidpoll);
		uv_close((uv_handle_t *)n->pidpoll, nm_close_free);
		n->pidpoll = NULL;
		close(n->pidfd);
		n->pidfd = -1;
	}
	n->pid = 0;
	nm_down_after_dnsmasq(n);
}

/* ---- the manager ---- */

static int net_cmp(const void *a, const void *b)
{
	const struct sv_net *x = *(struct sv_net *const *)a, *y = *(struct sv_net *const *)b;
	return strcmp(x->def->name, y->def->name);
}

static bool *pending_restart;   /* per network, from sv_netmgr_new to autostart */

struct sv_netmgr *sv_netmgr_new(uv_loop_t *loop, const char *run_dir, const char *net_dir,
                                struct sv_strv *errs)
{
	struct sv_netmgr *m = calloc(1, sizeof(*m));
	if (!m || !(m->run_dir = strdup(run_dir)) || !(m->net_dir = strdup(net_dir))) {
		if (m)
			free(m->run_dir);
		free(m);
		return NULL;
	}
	m->loop = loop;
	DIR *dir = opendir(net_dir);
	struct dirent *de;
	while (dir && (de = readdir(dir))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 5 || strcmp(de->d_name + l - 4, ".ini"))
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", net_dir, de->d_name);
		struct sv_network_def *d;
		if (sv_network_load(path, &d, errs) < 0)
			continue;
		/* two networks on one bridge: the second is refused */
		bool clash = false;
		for (size_t i = 0; i < m->n && !clash; i++)
			if (!strcmp(m->nets[i]->def->bridge, d->bridge) &&
			    (d->mode != SV_NET_BRIDGE || m->nets[i]->def->mode != SV_NET_BRIDGE)) {
				sv_strv_pushf(errs, "%s: bridge %s is network %s's already; give "
				              "each network its own bridge", path, d->bridge,
				              m->nets[i]->def->name);
				clash = true;
			}
		struct sv_net *n = clash ? NULL : calloc(1, sizeof(*n));
		struct sv_net **nn = n ? realloc(m->nets, (m->n + 1) * sizeof(*nn)) : NULL;
		if (!nn) {
			free(n);
			sv_network_free(d);
			continue;
		}
		m->nets = nn;
		n->m = m;
		n->def = d;
		n->pidfd = -1;
		snprintf(n->dir, sizeof(n->dir), "%s/net/%s", run_dir, d->name);
		m->nets[m->n++] = n;
	}
	if (dir)
		closedir(dir);
	if (m->n)
		qsort(m->nets, m->n, sizeof(*m->nets), net_cmp);
	free(pending_restart);
	pending_restart = calloc(m->n + 1, sizeof(*pending_restart));
	for (size_t i = 0; i < m->n; i++)
		nm_adopt_dnsmasq(m->nets[i], pending_restart ? &pending_restart[i] : &(bool){ 0 });
	return m;
}

static void autostart_cb(void *arg, int rc, const char *msg)
{
	(void)arg;
	(void)rc;
	(void)msg;   /* logged by the network */
}

void sv_netmgr_autostart(struct sv_netmgr *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct sv_net *n = m->nets[i];
		if (n->def->autostart || (pending_restart && pending_restart[i]))
			sv_net_up(n, autostart_cb, NULL);
	}
	free(pending_restart);
	pending_restart = NULL;
}

void sv_netmgr_free(struct sv_netmgr *m)
{
	if (!m)
		return;
	if (!m->freeing) {
		m->freeing = true;
		for (size_t i = 0; i < m->n; i++) {
			struct sv_net *n = m->nets[i];
			n->closing = true;
			stop_watch(n);
			if (n->restart)
				uv_close((uv_handle_t *)n->restart, nm_close_free);
			n->restart = NULL;
			if (n->pidpoll) {
				uv_close((uv_handle_t *)n->pidpoll, nm_close_free);
				close(n->pidfd);
			}
			n->pidpoll = NULL;
			/* our dnsmasq outlives us (setsid): the next qsupd adopts it */
			if (n->proc)
				uv_close((uv_handle_t *)n->proc, nm_close_free);
			n->proc = NULL;
			nm_call_waiters(n, -ECANCELED, "qsupd is exiting");
		}
	}
	if (m->jobs)
		return;   /* the last job frees m */
	for (size_t i = 0; i < m->n; i++) {
		free(m->nets[i]->leases);
		sv_network_free(m->nets[i]->def);
		free(m->nets[i]);
	}
	free(m->nets);
	free(m->run_dir);
	free(m->net_dir);
	free(m);
}

struct sv_net *sv_netmgr_find(struct sv_netmgr *m, const char *name)
{
	for (size_t i = 0; m && name && i < m->n; i++)
		if (!strcmp(m->nets[i]->def->name, name))
			return m->nets[i];
	return NULL;
}

const char *sv_netmgr_bridge(void *mgr, const char *name)
{
	struct sv_net *n = sv_netmgr_find(mgr, name);
	return n ? n->def->bridge : NULL;
}

size_t sv_netmgr_count(struct sv_netmgr *m)
{
	return m ? m->n : 0;
}

struct sv_net *sv_netmgr_at(struct sv_netmgr *m, size_t i)
{
	return m && i < m->n ? m->nets[i] : NULL;
}

const char *sv_netmgr_dir(struct sv_netmgr *m)
{
	return m->net_dir;
}

const struct sv_network_def *sv_net_def(const struct sv_net *n)
{
	return n->def;
}

const char *sv_net_state(const struct sv_net *n)
{
	return nm_state_names[n->state];
}

bool sv_net_is_up(const struct sv_net *n)
{
	return n->state == NET_UP;
}

json_t *sv_net_json(const struct sv_net *n, bool leases)
{
	const struct sv_network_def *d = n->def;
	char sub[24], a[16], s[16], e[16], range[40];
	json_t *o = json_object();
	sv_network_subnet(d, sub, sizeof(sub));
	json_object_set_new(o, "name", json_string(d->name));
	json_object_set_new(o, "mode", json_string(sv_net_mode_name(d->mode)));
	json_object_set_new(o, "bridge", json_string(d->bridge));
	json_object_set_new(o, "state", json_string(nm_state_names[n->state]));
	json_object_set_new(o, "autostart", json_boolean(d->autostart));
	json_object_set_new(o, "file", json_string(d->path));
	if (d->mode != SV_NET_BRIDGE) {
		sv_ip4_str(d->addr, a, sizeof(a));
		sv_ip4_str(d->range_start, s, sizeof(s));
		sv_ip4_str(d->range_end, e, sizeof(e));
		snprintf(range, sizeof(range), "%s-%s", s, e);
		json_object_set_new(o, "subnet", json_string(sub));
		json_object_set_new(o, "address", json_string(a));
		json_object_set_new(o, "dhcp_range", json_string(range));
		json_object_set_new(o, "dns", json_boolean(d->dns));
		json_object_set_new(o, "uplink", d->uplink[0] ? json_string(d->uplink)
		                                               : json_null());
		json_object_set_new(o, "table", json_sprintf("ip qsup-%s", d->name));
		json_object_set_new(o, "dnsmasq_pid", n->pid ? json_integer(n->pid) : json_null());
	} else {
		json_object_set_new(o, "subnet", json_null());
	}
	json_object_set_new(o, "error", n->error[0] ? json_string(n->error) : json_null());
	if (leases) {
		json_t *l = json_array();
		for (size_t i = 0; i < n->nleases; i++) {
			char mac[18];
			sv_mac_format(n->leases[i].mac, mac);
			json_array_append_new(l, json_pack("{s:s, s:s, s:s?, s:I}", "mac", mac,
			                      "ip", n->leases[i].ip, "hostname",
			                      n->leases[i].host[0] ? n->leases[i].host : NULL,
			                      "expiry", (json_int_t)n->leases[i].expiry));
		}
		json_object_set_new(o, "leases", l);
	}
	return o;
}

/* ---- a profile's networks ---- */

struct profile_up {
	sv_net_cb cb;
	void *arg;
	size_t pending;
	int rc;
	char msg[600];
};

static void profile_one(void *arg, int rc, const char *msg)
{
	struct profile_up *u = arg;
	if (rc < 0 && u->rc == 0) {
		u->rc = rc;
		snprintf(u->msg, sizeof(u->msg), "%s", msg ? msg : strerror(-rc));
	}
	if (--u->pending)
		return;
	u->cb(u->arg, u->rc, u->rc ? u->msg : NULL);
	free(u);
}

void sv_netmgr_profile_up(struct sv_netmgr *m, const struct sv_profile *p, sv_net_cb cb,
                          void *arg)
{
	struct sv_net *todo[64];
	size_t k = 0;
	for (size_t i = 0; i < p->nnics; i++) {
		const struct sv_nic *c = &p->nics[i];
		if (c->type != SV_NIC_NETWORK)
			continue;
		struct sv_net *n = sv_netmgr_find(m, c->network);
		if (!n) {
			char msg[600];
			snprintf(msg, sizeof(msg), "nic %s: no network named %s (no %s.ini in %s)",
			         c->id, c->network, c->network, m ? m->net_dir : "the networks dir");
			cb(arg, -ENOENT, msg);
			return;
		}
		bool seen = false;
		for (size_t j = 0; j < k; j++)
			seen |= todo[j] == n;
		if (!seen && k < 64)
			todo[k++] = n;
	}
	if (!k) {
		cb(arg, 0, NULL);
		return;
	}
	struct profile_up *u = calloc(1, sizeof(*u));
	if (!u) {
		cb(arg, -ENOMEM, "out of memory");
		return;
	}
	u->cb = cb;
	u->arg = arg;
	u->pending = k + 1;   /* one for this loop, so that an early answer waits */
	for (size_t j = 0; j < k; j++)
		sv_net_up(todo[j], profile_one, u);
	profile_one(u, 0, NULL);
}
