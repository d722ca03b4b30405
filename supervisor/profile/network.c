/* Network definitions: see network.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "network.h"

static const char *const modes[] = { "nat", "isolated", "bridge" };

const char *sv_net_mode_name(enum sv_net_mode m)
{
	return modes[m];
}

uint32_t sv_ip4_mask(int prefix)
{
	return prefix <= 0 ? 0 : htonl(0xffffffffu << (32 - prefix));
}

void sv_ip4_str(uint32_t addr, char *buf, size_t size)
{
	if (!inet_ntop(AF_INET, &addr, buf, (socklen_t)size) && size)
		buf[0] = '\0';
}

void sv_network_subnet(const struct sv_network_def *n, char *buf, size_t size)
{
	char a[INET_ADDRSTRLEN];
	if (n->mode == SV_NET_BRIDGE) {
		snprintf(buf, size, "-");
		return;
	}
	sv_ip4_str(n->addr & sv_ip4_mask(n->prefix), a, sizeof(a));
	snprintf(buf, size, "%s/%d", a, n->prefix);
}

struct nctx {
	const char *path;
	const char *buf;
	size_t len, pos;
	int lineno;
	bool in_section, section_seen, oom;
	struct sv_network_def *n;
	struct sv_strv *errs;
	int line_of[8];         /* where each key was given (0: not given) */
	char *range;            /* the dhcp-range as given */
};

enum { K_MODE, K_BRIDGE, K_ADDRESS, K_RANGE, K_DNS, K_UPLINK, K_AUTOSTART, K_N };
static const char *const keys[] = { "mode", "bridge", "address", "dhcp-range", "dns",
	                             "uplink", "autostart" };

static void report(struct nctx *c, int line, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void report(struct nctx *c, int line, const char *key, const char *fmt, ...)
{
	char what[400], lineno[16] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(lineno, sizeof(lineno), "%d:", line);
	if (sv_strv_pushf(c->errs, "%s:%s%s%s%s %s", c->path, lineno,
	                  key ? " [network] " : "", key ? key : "", key ? ":" : "", what) < 0)
		c->oom = true;
}

/* One line at a time, counted, NULs refused. */
static char *reader(char *str, int num, void *stream)
{
	struct nctx *c = stream;
	size_t i = 0;
	if (c->pos >= c->len)
		return NULL;
	c->lineno++;
	while (c->pos < c->len && i + 1 < (size_t)num) {
		char ch = c->buf[c->pos++];
		if (ch == '\0') {
			report(c, c->lineno, NULL, "a NUL byte; a network file is text");
			ch = ' ';
		}
		str[i++] = ch;
		if (ch == '\n')
			break;
	}
	str[i] = '\0';
	if (i + 1 >= (size_t)num && str[i - 1] != '\n') {
		report(c, c->lineno, NULL, "line too long");
		while (c->pos < c->len && c->buf[c->pos++] != '\n')
			;
	}
	/* indentation is not a continuation line */
	size_t sp = strspn(str, " \t");
	memmove(str, str + sp, strlen(str + sp) + 1);
	return str;
}

static bool yesno(const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return false;
	return true;
}

static bool ifname_ok(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > 15 || v[0] == '-' || !strcmp(v, ".") || !strcmp(v, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct nctx *c = user;
	struct sv_network_def *n = c->n;
	int k;
	(void)section;
	if (!c->in_section) {
		if (c->section_seen)
			return 1;   /* reported with the header */
		report(c, c->lineno, NULL, "%s: keys must follow the [network] header", name);
		return 1;
	}
	for (k = 0; k < K_N && strcmp(keys[k], name); k++)
		;
	if (k == K_N) {
		report(c, c->lineno, name, "unknown key; use mode, bridge, address, dhcp-range, "
		       "dns, uplink or autostart");
		return 1;
	}
	if (c->line_of[k]) {
		report(c, c->lineno, name, "given twice (first at line %d); give each key once",
		       c->line_of[k]);
		return 1;
	}
	c->line_of[k] = c->lineno;
	switch (k) {
	case K_MODE:
		for (k = 0; k < 3 && strcmp(modes[k], value); k++)
			;
		if (k == 3)
			report(c, c->lineno, name, "\"%s\" is not a mode; use nat, isolated or "
			       "bridge", value);
		else
			n->mode = (enum sv_net_mode)k;
		break;
	case K_BRIDGE:
	case K_UPLINK:
		if (!ifname_ok(value))
			report(c, c->lineno, name, "\"%s\" is not an interface name; use 1-15 of "
			       "A-Z a-z 0-9 _ . -", value);
		else
			snprintf(k == K_BRIDGE ? n->bridge : n->uplink, 16, "%s", value);
		break;
	case K_ADDRESS: {
		char a[32];
		const char *slash = strchr(value, '/');
		char *end;
		long p = slash ? strtol(slash + 1, &end, 10) : -1;
		size_t al = slash ? (size_t)(slash - value) : 0;
		struct in_addr ia;
		if (!slash || al >= sizeof(a) || !slash[1] || *end || p < 8 || p > 30 ||
		    (memcpy(a, value, al), a[al] = '\0', inet_pton(AF_INET, a, &ia) != 1)) {
			report(c, c->lineno, name, "\"%s\" is not an IPv4 address with a prefix "
			       "length from 8 to 30, such as 192.168.123.1/24", value);
			break;
		}
		uint32_t m = sv_ip4_mask((int)p);
		if ((ia.s_addr & ~m) == 0 || (ia.s_addr & ~m) == ~m) {
			report(c, c->lineno, name, "%s is the subnet's %s address; give the "
			       "bridge's own address, such as %s.1/%ld", a,
			       (ia.s_addr & ~m) == 0 ? "network" : "broadcast", "192.168.123", p);
			break;
		}
		n->addr = ia.s_addr;
		n->prefix = (int)p;
		break;
	}
	case K_RANGE:
		free(c->range);
		if (!(c->range = strdup(value)))
			c->oom = true;
		break;
	case K_DNS:
	case K_AUTOSTART:
		if (!yesno(value, k == K_DNS ? &n->dns : &n->autostart))
			report(c, c->lineno, name, "\"%s\" is not yes or no", value);
		break;
	}
	return 1;
}

/* The cross-key rules and defaults. */
static void check(struct nctx *c)
{
	struct sv_network_def *n = c->n;
	char a[INET_ADDRSTRLEN];
	if (!c->section_seen) {
		report(c, 0, NULL, "no [network] section; a network file holds [network] "
		       "with at least mode (and address for nat and isolated)");
		return;
	}
	if (n->mode == SV_NET_BRIDGE) {
		static const int not_here[] = { K_ADDRESS, K_RANGE, K_DNS, K_UPLINK };
		for (size_t i = 0; i < 4; i++)
			if (c->line_of[not_here[i]])
				report(c, c->line_of[not_here[i]], keys[not_here[i]], "not for mode "
				       "= bridge (qsup only joins the bridge; its network is "
				       "someone else's)");
		if (!n->bridge[0] && !c->line_of[K_BRIDGE])
			report(c, c->line_of[K_MODE], "bridge", "missing: mode = bridge needs "
			       "the existing bridge to join, such as bridge = br0");
		return;
	}
	if (!c->line_of[K_ADDRESS]) {
		report(c, c->line_of[K_MODE], "address", "missing: %s needs the bridge's "
		       "address and prefix, such as address = 192.168.123.1/24",
		       sv_net_mode_name(n->mode));
		return;
	}
	if (!n->prefix)
		return;   /* reported */
	if (n->mode == SV_NET_ISOLATED && c->line_of[K_UPLINK])
		report(c, c->line_of[K_UPLINK], "uplink", "not for mode = isolated (it "
		       "forwards nothing); remove the line or use mode = nat");
	if (!n->bridge[0] && !c->line_of[K_BRIDGE])
		snprintf(n->bridge, sizeof(n->bridge), "qsup-%.10s", n->name);
	uint32_t m = sv_ip4_mask(n->prefix), net = n->addr & m;
	uint32_t first = htonl(ntohl(net) + 1), last = htonl(ntohl(net | ~m) - 1);
	if (!c->range) {
		/* after the bridge's address to the last (.2 to .254 for a /24
		 * with the bridge on .1), or, for a bridge on the last address,
		 * the first to the one before it */
		if (n->addr != last) {
			n->range_start = htonl(ntohl(n->addr) + 1);
			n->range_end = last;
		} else {
			n->range_start = first;
			n->range_end = htonl(ntohl(n->addr) - 1);
		}
		return;
	}
	char s1[32], s2[32];
	const char *dash = strchr(c->range, '-');
	struct in_addr i1, i2;
	size_t l1 = dash ? (size_t)(dash - c->range) : 0;
	if (!dash || l1 >= sizeof(s1) || strlen(dash + 1) >= sizeof(s2) ||
	    (memcpy(s1, c->range, l1), s1[l1] = '\0', strcpy(s2, dash + 1),
	     inet_pton(AF_INET, s1, &i1) != 1 || inet_pton(AF_INET, s2, &i2) != 1)) {
		report(c, c->line_of[K_RANGE], "dhcp-range", "\"%s\" is not START-END (two "
		       "IPv4 addresses), such as 192.168.123.2-192.168.123.254", c->range);
		return;
	}
	char sub[24];
	sv_network_subnet(n, sub, sizeof(sub));
	if (ntohl(i1.s_addr) < ntohl(first) || ntohl(i2.s_addr) > ntohl(last) ||
	    ntohl(i1.s_addr) > ntohl(last) || ntohl(i2.s_addr) < ntohl(first)) {
		report(c, c->line_of[K_RANGE], "dhcp-range", "%s is outside the subnet %s "
		       "(of address); give addresses between its network and broadcast "
		       "addresses", c->range, sub);
		return;
	}
	if (ntohl(i1.s_addr) > ntohl(i2.s_addr)) {
		report(c, c->line_of[K_RANGE], "dhcp-range", "%s: the start is after the "
		       "end", c->range);
		return;
	}
	if (ntohl(n->addr) >= ntohl(i1.s_addr) && ntohl(n->addr) <= ntohl(i2.s_addr)) {
		sv_ip4_str(n->addr, a, sizeof(a));
		report(c, c->line_of[K_RANGE], "dhcp-range", "%s holds the bridge's own "
		       "address %s; leave it out of the range", c->range, a);
		return;
	}
	n->range_start = i1.s_addr;
	n->range_end = i2.s_addr;
}

void sv_network_free(struct sv_network_def *n)
{
	if (!n)
		return;
	free(n->path);
	free(n->name);
	free(n);
}

/* Section headers: inih passes only keys to the handler, so the reader
 * looks at each header line itself. */
static char *reader_sections(char *str, int num, void *stream)
{
	struct nctx *c = stream;
	char *r = reader(str, num, c);
	if (!r)
		return NULL;
	if (r[0] == '[') {
		char *end = strchr(r, ']');
		size_t len = end ? (size_t)(end - r - 1) : 0;
		if (end && len == 7 && !strncmp(r + 1, "network", 7)) {
			if (c->section_seen && c->in_section)
				report(c, c->lineno, NULL, "[network] given twice; a network "
				       "file has one");
			c->in_section = true;
		} else {
			report(c, c->lineno, NULL, "%.*s: unknown section; a network file "
			       "has only [network]", (int)strcspn(r, "\r\n"), r);
			c->in_section = false;
		}
		c->section_seen = true;
	}
	return r;
}

int sv_network_parse(const char *path, const char *buf, size_t len,
                     struct sv_network_def **out, struct sv_strv *errs)
{
	struct nctx c = { .path = path, .buf = buf, .len = len, .errs = errs };
	size_t before = errs->n;
	*out = NULL;
	c.n = calloc(1, sizeof(*c.n));
	if (!c.n)
		return -ENOMEM;
	c.n->dns = true;
	c.n->path = strdup(path);
	c.n->digest = sv_digest(buf, len);
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t bl = strlen(base);
	if (bl < 5 || strcmp(base + bl - 4, ".ini")) {
		report(&c, 0, NULL, "a network file's name must end in .ini (default.ini "
		       "defines the network default)");
		bl += 4;
	}
	c.n->name = strndup(base, bl - 4);
	if (!c.n->path || !c.n->name) {
		sv_network_free(c.n);
		return -ENOMEM;
	}
	if (!sv_name_valid(c.n->name))
		report(&c, 0, NULL, "\"%s\" (the file name) is not a valid network name; use "
		       "1-%d of A-Z a-z 0-9 _ . -, starting with a letter or digit",
		       c.n->name, SV_NAME_MAX);
	int r = ini_parse_stream(reader_sections, &c, handler, &c);
	if (r > 0 && r <= c.lineno) {
		bool seen = false;
		char pre[32];
		snprintf(pre, sizeof(pre), ":%d:", r);
		for (size_t i = before; i < errs->n; i++)
			seen |= strstr(errs->v[i] + strlen(path), pre) == errs->v[i] + strlen(path);
		if (!seen)
			report(&c, r, NULL, "syntax error; use key = value");
	}
	if (errs->n == before)
		check(&c);
	free(c.range);
	if (c.oom || errs->n > before) {
		sv_network_free(c.n);
		return c.oom ? -ENOMEM : -EINVAL;
	}
	*out = c.n;
	return 0;
}

int sv_network_load(const char *path, struct sv_network_def **out, struct sv_strv *errs)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	*out = NULL;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		sv_strv_pushf(errs, "%s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > SV_NETWORK_MAX_BYTES) {
		close(fd);
		sv_strv_pushf(errs, "%s: %s", path, S_ISREG(st.st_mode) ? "too large (64 KiB "
		              "at most)" : "not a regular file");
		return -EINVAL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	ssize_t got = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	int e = errno;
	close(fd);
	if (got < 0) {
		free(buf);
		sv_strv_pushf(errs, "%s: %s", path, strerror(e));
		return -e;
	}
	int r = sv_network_parse(path, buf, (size_t)got, out, errs);
	free(buf);
	return r;
}
