/* qsupctl's network verbs (ctl.h): net-list, net-status, net-start and
 * net-stop, on the networks qsupd manages. */
#include <stdio.h>
#include <time.h>

#include "ctl.h"

static void guests_str(json_t *o, char *buf, size_t size)
{
	size_t i, len = 0;
	json_t *v;
	buf[0] = '\0';
	json_array_foreach(json_object_get(o, "guests"), i, v)
		len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s",
		                        i ? "," : "", json_string_value(v));
	if (!buf[0])
		snprintf(buf, size, "-");
}

static void show_net_list(struct ctl *c, const char *what, json_t *ret)
{
	size_t i;
	json_t *n;
	char g[512];
	(void)c, (void)what;
	printf("%-16s %-9s %-15s %-18s %-9s %s\n", "NAME", "MODE", "BRIDGE", "SUBNET",
	       "STATE", "GUESTS");
	json_array_foreach(ret, i, n) {
		guests_str(n, g, sizeof(g));
		printf("%-16s %-9s %-15s %-18s %-9s %s\n", sv_jstr(n, "name", "?"),
		       sv_jstr(n, "mode", "?"), sv_jstr(n, "bridge", "-"),
		       sv_jstr(n, "subnet", "-"), sv_jstr(n, "state", "?"), g);
	}
}

int ctl_net_list(struct ctl *c, char **args, int nargs)
{
	(void)args, (void)nargs;
	return ctl_request(c, c->cmd->name, NULL, NULL, show_net_list);
}

static void show_net_status(struct ctl *c, const char *name, json_t *n)
{
	json_t *pid = json_object_get(n, "dnsmasq_pid"), *l;
	char g[512];
	size_t i;
	(void)name;
	if (c->shown++)
		putchar('\n');
	guests_str(n, g, sizeof(g));
	printf("Name:       %s\nMode:       %s\nState:      %s\nBridge:     %s\n",
	       sv_jstr(n, "name", "?"), sv_jstr(n, "mode", "?"), sv_jstr(n, "state", "?"),
	       sv_jstr(n, "bridge", "-"));
	if (json_object_get(n, "address")) {
		printf("Subnet:     %s\nAddress:    %s\nDHCP:       %s\nDNS:        %s\n"
		       "Uplink:     %s\nTable:      %s\n", sv_jstr(n, "subnet", "-"),
		       sv_jstr(n, "address", "-"), sv_jstr(n, "dhcp_range", "-"),
		       json_is_true(json_object_get(n, "dns")) ? "yes" : "no",
		       sv_jstr(n, "uplink", "any"), sv_jstr(n, "table", "-"));
		if (json_is_integer(pid))
			printf("dnsmasq:    pid %lld\n", (long long)json_integer_value(pid));
		else
			printf("dnsmasq:    not running\n");
	}
	printf("Guests:     %s\n", g);
	if (json_object_get(n, "error") && !json_is_null(json_object_get(n, "error")))
		printf("Error:      %s\n", sv_jstr(n, "error", ""));
	l = json_object_get(n, "leases");
	if (json_array_size(l)) {
		json_t *e;
		printf("Leases:\n  %-17s %-15s %-16s %s\n", "MAC", "IP", "GUEST", "EXPIRES");
		json_array_foreach(l, i, e) {
			time_t t = (time_t)json_integer_value(json_object_get(e, "expiry"));
			struct tm tm;
			char when[32] = "-";
			if (t && localtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
			printf("  %-17s %-15s %-16s %s\n", sv_jstr(e, "mac", "?"),
			       sv_jstr(e, "ip", "?"), sv_jstr(e, "guest", "-"), when);
		}
	}
}

int ctl_net_status(struct ctl *c, char **args, int nargs)
{
	return ctl_per_name(c, args, nargs, show_net_status);
}

static void show_net_outcome(struct ctl *c, const char *name, json_t *n)
{
	(void)c;
	printf("%s: %s\n", name, sv_jstr(n, "state", "done"));
}

int ctl_net_startstop(struct ctl *c, char **args, int nargs)
{
	return ctl_per_name(c, args, nargs, show_net_outcome);
}
