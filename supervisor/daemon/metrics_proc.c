/* Metrics (metrics_int.h): the figures read from /proc and /sys, small
 * reads of in-memory files on the loop. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hotplug.h"
#include "metrics_int.h"

static double mono_s(void)
{
	return (double)uv_hrtime() / 1e9;
}

/* ---- /proc and /sys: small reads of in-memory files ---- */

static ssize_t read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* Field `want` (1-based, as proc(5) counts) of /proc/PID/stat's text: the
 * fields resume after the last ')' (comm may hold anything), at field 3. */
static bool stat_field(const char *buf, int want, unsigned long long *out)
{
	const char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return false;
	p += 2;
	for (int field = 3; field < want; field++)
		if (!(p = strchr(p, ' ')))
			return false;
		else
			p++;
	char *end;
	*out = strtoull(p, &end, 10);
	return end != p;
}

/* CPU seconds (user, system) and RSS bytes of process pid ("self" when 0). */
bool metrics_proc_usage(int pid, double *user, double *sys, double *rss)
{
	char path[64], buf[1024];
	unsigned long long ut, st, pages;
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/stat");
	if (read_small(path, buf, sizeof(buf)) <= 0 || !stat_field(buf, 14, &ut) ||
	    !stat_field(buf, 15, &st))
		return false;
	*user = (double)ut / (double)(tick > 0 ? tick : 100);
	*sys = (double)st / (double)(tick > 0 ? tick : 100);
	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/statm");
	const char *p = buf;
	if (read_small(path, buf, sizeof(buf)) <= 0 || !(p = strchr(buf, ' ')))
		return false;
	pages = strtoull(p + 1, NULL, 10);
	*rss = (double)pages * (double)(page > 0 ? page : 4096);
	return true;
}

static bool sys_counter(const char *ifname, const char *what, double *out)
{
	char path[160], buf[32];
	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", ifname, what);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return false;
	*out = (double)strtoull(buf, NULL, 10);
	return true;
}

/* Is interface ifname a tap (it has tun_flags) carrying the MAC qsupd gives
 * a guest NIC's tap (tap.h: the guest's, first byte 0xfe)? A bridge whose
 * only port is that tap has its MAC too. */
static bool tap_has_mac(const char *ifname, const char *want)
{
	char path[160], buf[32];
	snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname);
	if (read_small(path, buf, sizeof(buf)) < 17 || strncmp(buf, want, 17))
		return false;
	snprintf(path, sizeof(path), "/sys/class/net/%s/tun_flags", ifname);
	return read_small(path, buf, sizeof(buf)) > 0;
}

/* The tap of a bridge or network NIC, by its MAC: the cached name while it
 * still matches, else one walk of /sys/class/net. */
static bool tap_of(struct gslot *s, const struct sv_nic *n, char out[SV_IFNAMSIZ])
{
	char want[18];
	uint8_t mac[6];
	memcpy(mac, n->mac, 6);
	mac[0] = 0xfe;
	sv_mac_format(mac, want);
	const char *cached = json_string_value(json_object_get(s->taps, n->id));
	if (cached && tap_has_mac(cached, want)) {
		snprintf(out, SV_IFNAMSIZ, "%.15s", cached);
		return true;
	}
	DIR *dir = opendir("/sys/class/net");
	struct dirent *e;
	bool found = false;
	while (dir && !found && (e = readdir(dir))) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= SV_IFNAMSIZ)
			continue;
		if ((found = tap_has_mac(e->d_name, want)))
			snprintf(out, SV_IFNAMSIZ, "%.15s", e->d_name);
	}
	if (dir)
		closedir(dir);
	if (found)
		json_object_set_new(s->taps, n->id, json_string(out));
	else
		json_object_del(s->taps, n->id);
	return found;
}

/* NIC id's counters, from its tap, onto nics. The tap's receive is the
 * guest's transmit: counted as the guest sees them (as virsh domifstat
 * does). */
static void nic_counters(json_t *nics, const char *id, const char *tap)
{
	double rxb, txb, rxp, txp;
	if (sys_counter(tap, "tx_bytes", &rxb) && sys_counter(tap, "rx_bytes", &txb) &&
	    sys_counter(tap, "tx_packets", &rxp) && sys_counter(tap, "rx_packets", &txp))
		json_array_append_new(nics, json_pack("{s:s, s:s, s:f, s:f, s:f, s:f}", "id", id,
		                      "tap", tap, "rx_bytes", rxb, "tx_bytes", txb,
		                      "rx_packets", rxp, "tx_packets", txp));
}

/* The hot-plugged NICs of g on a tap: one qsupd made (bridge, network),
 * found by its MAC (the one given to attach, or the stable one it chose),
 * or the operator's (type tap: its backend is "tap NAME"). */
static void hotplugged_nics(struct gslot *s, struct sv_guest *g, json_t *nics)
{
	json_t *devs = sv_hotplug_list(g), *v;
	size_t i;
	json_array_foreach(devs, i, v) {
		const char *id = json_string_value(json_object_get(v, "id"));
		const char *given = json_string_value(json_object_get(v, "mac"));
		char tap[SV_IFNAMSIZ];
		if (!id || strcmp(sv_jstr(v, "kind", ""), "nic") ||
		    !strcmp(sv_jstr(v, "source", ""), "profile") ||
		    strcmp(sv_jstr(v, "state", ""), "attached"))
			continue;
		const char *backend = sv_jstr(v, "backend", "");
		if (!strncmp(backend, "tap ", 4)) {
			snprintf(tap, sizeof(tap), "%.15s", backend + 4);
			nic_counters(nics, id, tap);
			continue;
		}
		struct sv_nic n = { .id = (char *)id, .type = SV_NIC_BRIDGE };
		if (!given || sv_mac_parse(given, n.mac) < 0)
			sv_mac_stable(g->name, id, n.mac);
		if (tap_of(s, &n, tap))
			nic_counters(nics, id, tap);
	}
	json_decref(devs);
}

void metrics_collect_host(struct gslot *s, struct sv_guest *g)
{
	json_t *nics = json_array();
	s->have_proc = false;
	if (sv_guest_active(g) && g->pid > 0) {
		s->time = mono_s();
		s->have_proc = metrics_proc_usage(g->pid, &s->cpu_user, &s->cpu_system, &s->rss);
	}
	const struct sv_profile *p = sv_guest_profile_now(g);
	for (size_t i = 0; s->have_proc && p && i < p->nnics; i++) {
		const struct sv_nic *n = &p->nics[i];
		char tap[SV_IFNAMSIZ];
		if (n->type == SV_NIC_TAP && n->ifname)
			snprintf(tap, sizeof(tap), "%.15s", n->ifname);
		else if ((n->type != SV_NIC_BRIDGE && n->type != SV_NIC_NETWORK) || !tap_of(s, n, tap))
			continue;
		nic_counters(nics, n->id, tap);
	}
	if (s->have_proc && g->hp)
		hotplugged_nics(s, g, nics);
	json_decref(s->nics);
	s->nics = nics;
}
