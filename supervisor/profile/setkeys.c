/* Live resource control, the pure part: see setkeys.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "setkeys.h"

const char *const sv_iotune_keys[SV_IOTUNE_N] = {
	"bps-total", "bps-read", "bps-write", "iops-total", "iops-read", "iops-write",
	"bps-total-max", "bps-read-max", "bps-write-max",
	"iops-total-max", "iops-read-max", "iops-write-max",
	"bps-total-max-length", "bps-read-max-length", "bps-write-max-length",
	"iops-total-max-length", "iops-read-max-length", "iops-write-max-length",
};

const char *const sv_iotune_qmp[SV_IOTUNE_N] = {
	"bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr",
	"bps_max", "bps_rd_max", "bps_wr_max", "iops_max", "iops_rd_max", "iops_wr_max",
	"bps_max_length", "bps_rd_max_length", "bps_wr_max_length",
	"iops_max_length", "iops_rd_max_length", "iops_wr_max_length",
};

int sv_iotune_index(const char *key)
{
	for (int i = 0; key && i < SV_IOTUNE_N; i++)
		if (!strcmp(sv_iotune_keys[i], key))
			return i;
	return -1;
}

static bool is_bps(int i)
{
	return i < SV_IOT_LEN && i % 6 < 3;
}

int sv_iotune_parse(int i, const char *v, uint64_t *out, char *why, size_t size)
{
	uint64_t x = 0;
	int r;

	if (!strcmp(v, "none") || !strcmp(v, "0")) {
		*out = 0;
		return 0;
	}
	if (is_bps(i)) {
		r = sv_size_parse(v, &x);
		if (r == 0 && x >= SV_IOT_BPS_MIN && x <= SV_IOT_BPS_MAX) {
			*out = x;
			return 0;
		}
		snprintf(why, size, "\"%s\" is %s; use bytes per second from 4K to 1T, such as "
		         "10M (K, M, G, T are powers of 1024), or 0 for no limit", v,
		         r == -EINVAL ? "not a size" : x && x < SV_IOT_BPS_MIN ? "too small"
		         : "too large");
		return -EINVAL;
	}
	uint64_t max = i < SV_IOT_LEN ? SV_IOT_IOPS_MAX : SV_IOT_LEN_MAX;
	r = sv_uint_parse(v, 1, max, &x);
	if (r == 0) {
		*out = x;
		return 0;
	}
	if (i < SV_IOT_LEN)
		snprintf(why, size, "\"%s\" is %s; use operations per second, a whole number "
		         "from 1 to 100000000, or 0 for no limit", v,
		         r == -ERANGE ? "out of range" : "not a whole number");
	else
		snprintf(why, size, "\"%s\" is %s; use seconds, a whole number from 1 to 3600, "
		         "or 0 for QEMU's default (1)", v,
		         r == -ERANGE ? "out of range" : "not a whole number");
	return -EINVAL;
}

bool sv_iotune_any(const uint64_t v[SV_IOTUNE_N])
{
	for (int i = 0; i < SV_IOTUNE_N; i++)
		if (v[i])
			return true;
	return false;
}

int sv_iotune_check(const uint64_t v[SV_IOTUNE_N], char *why, size_t size)
{
	for (int kind = 0; kind < 2; kind++) {
		int t = kind * 3;
		if (v[t] && (v[t + 1] || v[t + 2])) {
			snprintf(why, size, "%s cannot be given with %s: QEMU takes a total limit or "
			         "read and write ones", sv_iotune_keys[t],
			         sv_iotune_keys[v[t + 1] ? t + 1 : t + 2]);
			return -EINVAL;
		}
		if (v[t + SV_IOT_MAX] && (v[t + 1 + SV_IOT_MAX] || v[t + 2 + SV_IOT_MAX])) {
			snprintf(why, size, "%s cannot be given with %s", sv_iotune_keys[t + SV_IOT_MAX],
			         sv_iotune_keys[t + SV_IOT_MAX + (v[t + 1 + SV_IOT_MAX] ? 1 : 2)]);
			return -EINVAL;
		}
	}
	for (int i = 0; i < 6; i++) {
		uint64_t avg = v[i], max = v[i + SV_IOT_MAX], len = v[i + SV_IOT_LEN];
		if (max && !avg) {
			snprintf(why, size, "%s needs %s (the burst is above that limit)",
			         sv_iotune_keys[i + SV_IOT_MAX], sv_iotune_keys[i]);
			return -EINVAL;
		}
		if (max && max < avg) {
			snprintf(why, size, "%s (%llu) is below %s (%llu): a burst is at least the "
			         "limit", sv_iotune_keys[i + SV_IOT_MAX], (unsigned long long)max,
			         sv_iotune_keys[i], (unsigned long long)avg);
			return -EINVAL;
		}
		if (len && !max) {
			snprintf(why, size, "%s needs %s (how long that burst may last)",
			         sv_iotune_keys[i + SV_IOT_LEN], sv_iotune_keys[i + SV_IOT_MAX]);
			return -EINVAL;
		}
		if (len && max > SV_IOT_QEMU_MAX / len) {
			snprintf(why, size, "%s (%llu s) is too long for %s: QEMU takes a burst of "
			         "at most 10^15 (the rate times its length)",
			         sv_iotune_keys[i + SV_IOT_LEN], (unsigned long long)len,
			         sv_iotune_keys[i + SV_IOT_MAX]);
			return -EINVAL;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ CPU lists */

static int cpu_num(const char **p, unsigned long *out)
{
	char *end;

	if (**p < '0' || **p > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(*p, &end, 10);
	if (errno || *out >= CPU_SETSIZE)
		return -ERANGE;
	*p = end;
	return 0;
}

int sv_cpulist_parse(const char *s, cpu_set_t *set, char *why, size_t size)
{
	const char *p = s;

	CPU_ZERO(set);
	if (!*s)
		goto bad;
	while (*p) {
		unsigned long a, b;
		int r = cpu_num(&p, &a);
		if (r == -ERANGE)
			goto range;
		if (r < 0)
			goto bad;
		b = a;
		if (*p == '-') {
			p++;
			r = cpu_num(&p, &b);
			if (r == -ERANGE)
				goto range;
			if (r < 0 || b < a)
				goto bad;
		}
		for (unsigned long c = a; c <= b; c++)
			CPU_SET(c, set);
		if (*p == ',' && p[1])
			p++;
		else if (*p)
			goto bad;
	}
	return 0;
range:
	snprintf(why, size, "\"%s\" names a CPU above %d", s, CPU_SETSIZE - 1);
	return -EINVAL;
bad:
	snprintf(why, size, "\"%s\" is not a CPU list; use CPU numbers and ranges separated "
	         "by commas, such as 0-3,6", s);
	return -EINVAL;
}

void sv_cpulist_format(const cpu_set_t *set, char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, set))
			continue;
		int e = c;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		int w = e > c ? snprintf(buf + o, size - o, "%s%d-%d", o ? "," : "", c, e)
		              : snprintf(buf + o, size - o, "%s%d", o ? "," : "", c);
		if (w < 0 || (size_t)w >= size - o)
			return;
		o += (size_t)w;
		c = e;
	}
}

/* ------------------------------------------------------------ set items */

#define MIB (1ull << 20)

int sv_set_parse(const char *kv, struct sv_set_item *it, char *why, size_t size)
{
	const char *eq = strchr(kv, '=');
	char w[160];

	memset(it, 0, sizeof(*it));
	if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(it->key) ||
	    strlen(eq + 1) >= sizeof(it->value)) {
		snprintf(why, size, "\"%.60s\": use KEY=VALUE, such as disk.ID.bps-write=10M, "
		         "cpu-affinity=0-1 or balloon=512M", kv);
		return -EINVAL;
	}
	memcpy(it->key, kv, (size_t)(eq - kv));
	it->key[eq - kv] = '\0';
	snprintf(it->value, sizeof(it->value), "%s", eq + 1);
	if (!strncmp(it->key, "disk.", 5)) {
		const char *id = it->key + 5, *dot = strchr(id, '.');
		if (!dot || (size_t)(dot - id) > SV_ID_MAX) {
			snprintf(why, size, "%s: use disk.ID.LIMIT, such as disk.root.bps-write",
			         it->key);
			return -EINVAL;
		}
		memcpy(it->disk, id, (size_t)(dot - id));
		it->disk[dot - id] = '\0';
		if (!sv_device_id_valid(it->disk)) {
			snprintf(why, size, "%s: \"%s\" is not a disk id", it->key, it->disk);
			return -EINVAL;
		}
		it->kind = SV_SET_IOTUNE;
		if ((it->index = sv_iotune_index(dot + 1)) < 0) {
			snprintf(why, size, "%s: %s is not an I/O limit; use bps-total, bps-read, "
			         "bps-write, iops-total, iops-read or iops-write, each also with "
			         "-max and -max-length", it->key, dot + 1);
			return -EINVAL;
		}
		if (sv_iotune_parse(it->index, it->value, &it->n, w, sizeof(w)) < 0) {
			snprintf(why, size, "%s: %s", it->key, w);
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(it->key, "cpu-affinity") || !strcmp(it->key, "emulator-affinity")) {
		it->kind = it->key[0] == 'c' ? SV_SET_CPU : SV_SET_EMULATOR;
		if (sv_cpulist_parse(it->value, &it->cpus, w, sizeof(w)) < 0) {
			snprintf(why, size, "%s: %s", it->key, w);
			return -EINVAL;
		}
		sv_cpulist_format(&it->cpus, it->value, sizeof(it->value));
		return 0;
	}
	if (!strcmp(it->key, "balloon")) {
		it->kind = SV_SET_BALLOON;
		int r = sv_size_parse(it->value, &it->n);
		if (r < 0 || it->n < 16 * MIB || it->n % MIB) {
			snprintf(why, size, "balloon: \"%s\" is %s; use the guest's memory, a "
			         "multiple of 1M from 16M to its memory, such as 512M", it->value,
			         r == -EINVAL ? "not a size" : r < 0 ? "too large" : it->n < 16 * MIB
			         ? "too small" : "not a multiple of 1M");
			return -EINVAL;
		}
		return 0;
	}
	snprintf(why, size, "%.60s: not a key for set; use disk.ID.LIMIT (an I/O limit), "
	         "cpu-affinity, emulator-affinity or balloon", it->key);
	return -EINVAL;
}

static bool is_cdrom(const struct sv_profile *p, const char *id)
{
	for (size_t i = 0; p && i < p->ndrives; i++)
		if (!strcmp(p->drives[i].id, id))
			return p->drives[i].cdrom;
	return false;
}

int sv_set_check(const struct sv_profile *p, const struct sv_set_item *items, size_t n,
                 const char *const *ids, const uint64_t (*cur)[SV_IOTUNE_N], size_t ndisks,
                 const cpu_set_t *host, char *why, size_t size)
{
	for (size_t i = 0; i < n; i++) {
		const struct sv_set_item *it = &items[i];
		if (it->kind == SV_SET_IOTUNE) {
			const uint64_t *now = NULL;
			uint64_t merged[SV_IOTUNE_N];
			char w[200];
			bool cdrom = is_cdrom(p, it->disk);
			for (size_t k = 0; k < ndisks && !now; k++)
				if (!strcmp(ids[k], it->disk))
					now = cur[k];
			if (!now || cdrom) {
				snprintf(why, size, "%s: %s has no disk %s%s", it->key, p->name, it->disk,
				         cdrom ? " (a CD-ROM takes no I/O limits)" : "");
				return -EINVAL;
			}
			memcpy(merged, now, sizeof(merged));
			/* this item and every later one for the same disk */
			for (size_t j = 0; j < n; j++)
				if (items[j].kind == SV_SET_IOTUNE && !strcmp(items[j].disk, it->disk))
					merged[items[j].index] = items[j].n;
			if (sv_iotune_check(merged, w, sizeof(w)) < 0) {
				snprintf(why, size, "disk %s: %s", it->disk, w);
				return -EINVAL;
			}
		} else if (it->kind == SV_SET_BALLOON) {
			if (!p->balloon) {
				snprintf(why, size, "balloon: %s has no balloon; add balloon = yes to "
				         "[guest] in its profile (from its next start)", p->name);
				return -EINVAL;
			}
			if (it->n > p->memory) {
				snprintf(why, size, "balloon: %s is above the guest's memory (%llu MiB); "
				         "the balloon can only take memory away", it->value,
				         (unsigned long long)(p->memory >> 20));
				return -EINVAL;
			}
		} else if (host) {
			cpu_set_t missing;
			char list[128], have[128];
			CPU_AND(&missing, &it->cpus, host);
			CPU_XOR(&missing, &missing, &it->cpus);
			if (CPU_COUNT(&missing)) {
				sv_cpulist_format(&missing, list, sizeof(list));
				sv_cpulist_format(host, have, sizeof(have));
				snprintf(why, size, "%s: the host has no CPU %s (it has %s)", it->key,
				         list, have);
				return -EINVAL;
			}
		}
	}
	return 0;
}
