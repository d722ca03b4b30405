/* rtnetlink through libmnl: see netlink.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include "netlink.h"

/* -EPERM and -EACCES read better as the capability they lack. */
static const char *why(int r)
{
	return r == -EPERM || r == -EACCES ? "needs CAP_NET_ADMIN" : strerror(-r);
}

struct nl {
	struct mnl_socket *s;
	unsigned portid, seq;
	char buf[32768];   /* more than MNL_SOCKET_BUFFER_SIZE (8 KiB at most) */
};

static int nl_open(struct nl *n, struct sv_error *err)
{
	n->s = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!n->s || mnl_socket_bind(n->s, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		if (n->s)
			mnl_socket_close(n->s);
		n->s = NULL;
		return sv_error_set(err, -e, "rtnetlink socket: %s", strerror(e));
	}
	n->portid = mnl_socket_get_portid(n->s);
	n->seq = (unsigned)time(NULL);
	return 0;
}

static struct nlmsghdr *nl_msg(struct nl *n, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *h = mnl_nlmsg_put_header(n->buf);
	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_REQUEST | flags;
	h->nlmsg_seq = ++n->seq;
	return h;
}

/* Send h and run cb on each answer until the ack or the dump's end: 0 or
 * -errno (the kernel's). */
static int nl_talk(struct nl *n, struct nlmsghdr *h, mnl_cb_t cb, void *data)
{
	if (mnl_socket_sendto(n->s, h, h->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t len = mnl_socket_recvfrom(n->s, n->buf, sizeof(n->buf));
		if (len < 0)
			return -errno;
		int r = mnl_cb_run(n->buf, (size_t)len, n->seq, n->portid, cb, data);
		if (r < 0)
			return -errno;
		if (r == MNL_CB_STOP)
			return 0;
	}
}

static void nl_close(struct nl *n)
{
	if (n->s)
		mnl_socket_close(n->s);
}

/* ---- links ---- */

static int linkinfo_cb(const struct nlattr *a, void *data)
{
	bool *bridge = data;
	if (mnl_attr_get_type(a) == IFLA_INFO_KIND && mnl_attr_validate(a, MNL_TYPE_STRING) >= 0)
		*bridge = !strcmp(mnl_attr_get_str(a), "bridge");
	return MNL_CB_OK;
}

static int link_attr_cb(const struct nlattr *a, void *data)
{
	struct sv_nl_link *l = data;
	switch (mnl_attr_get_type(a)) {
	case IFLA_MTU:
		if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
			l->mtu = (int)mnl_attr_get_u32(a);
		break;
	case IFLA_MASTER:
		if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
			l->master = (int)mnl_attr_get_u32(a);
		break;
	case IFLA_ADDRESS:
		if (mnl_attr_get_payload_len(a) == 6) {
			memcpy(l->mac, mnl_attr_get_payload(a), 6);
			l->has_mac = true;
		}
		break;
	case IFLA_LINKINFO:
		mnl_attr_parse_nested(a, linkinfo_cb, &l->bridge);
		break;
	}
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *h, void *data)
{
	struct sv_nl_link *l = data;
	const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(h);
	if (h->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	l->index = ifm->ifi_index;
	l->up = ifm->ifi_flags & IFF_UP;
	mnl_attr_parse(h, sizeof(*ifm), link_attr_cb, l);
	return MNL_CB_OK;
}

int sv_nl_link_get(const char *name, struct sv_nl_link *out, struct sv_error *err)
{
	struct nl n;
	int r = nl_open(&n, err);
	if (r < 0)
		return r;
	memset(out, 0, sizeof(*out));
	struct nlmsghdr *h = nl_msg(&n, RTM_GETLINK, NLM_F_ACK);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(h, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_u32(h, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	mnl_attr_put_strz(h, IFLA_IFNAME, name);
	r = nl_talk(&n, h, link_cb, out);
	nl_close(&n);
	if (r == -ENODEV || (r == 0 && out->index <= 0))
		return sv_error_set(err, -ENODEV, "%s: no such interface", name);
	if (r < 0)
		return sv_error_set(err, r, "%s: reading the link: %s", name, strerror(-r));
	return 0;
}

int sv_nl_bridge_add(const char *name, struct sv_error *err)
{
	struct nl n;
	int r = nl_open(&n, err);
	if (r < 0)
		return r;
	struct nlmsghdr *h = nl_msg(&n, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(h, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, name);
	struct nlattr *info = mnl_attr_nest_start(h, IFLA_LINKINFO);
	mnl_attr_put_strz(h, IFLA_INFO_KIND, "bridge");
	mnl_attr_nest_end(h, info);
	r = nl_talk(&n, h, NULL, NULL);
	nl_close(&n);
	if (r == -EEXIST)
		return sv_error_set(err, r, "bridge %s: an interface of that name exists", name);
	if (r < 0)
		return sv_error_set(err, r, "bridge %s: creating it: %s", name, why(r));
	return 0;
}

int sv_nl_link_del(const char *name, struct sv_error *err)
{
	struct nl n;
	int r = nl_open(&n, err);
	if (r < 0)
		return r;
	struct nlmsghdr *h = nl_msg(&n, RTM_DELLINK, NLM_F_ACK);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(h, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, name);
	r = nl_talk(&n, h, NULL, NULL);
	nl_close(&n);
	if (r == -ENODEV)
		return sv_error_set(err, r, "%s: no such interface", name);
	if (r < 0)
		return sv_error_set(err, r, "%s: deleting it: %s", name, why(r));
	return 0;
}

/* One RTM_NEWLINK on index: attribute type with len bytes of val, or
 * (type 0) the IFF_UP flag. */
static int set_one(struct nl *n, int index, uint16_t type, const void *val, size_t len)
{
	struct nlmsghdr *h = nl_msg(n, RTM_NEWLINK, NLM_F_ACK);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(h, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = index;
	if (type)
		mnl_attr_put(h, type, len, val);
	else {
		ifm->ifi_flags = IFF_UP;
		ifm->ifi_change = IFF_UP;
	}
	return nl_talk(n, h, NULL, NULL);
}

int sv_nl_link_set(int index, const char *what, const uint8_t *mac, int mtu, int master,
                   bool up, struct sv_error *err)
{
	struct nl n;
	int r = nl_open(&n, err);
	if (r < 0)
		return r;
	uint32_t v;
	if (mac && (r = set_one(&n, index, IFLA_ADDRESS, mac, 6)) < 0) {
		sv_error_set(err, r, "%s: setting its MAC address: %s", what, why(r));
		goto out;
	}
	v = (uint32_t)mtu;
	if (mtu > 0 && (r = set_one(&n, index, IFLA_MTU, &v, sizeof(v))) < 0) {
		sv_error_set(err, r, "%s: setting the MTU to %d: %s", what, mtu, why(r));
		goto out;
	}
	v = (uint32_t)master;
	if (master > 0 && (r = set_one(&n, index, IFLA_MASTER, &v, sizeof(v))) < 0) {
		sv_error_set(err, r, "%s: adding it to its bridge: %s", what, why(r));
		goto out;
	}
	if (up && (r = set_one(&n, index, 0, NULL, 0)) < 0)
		sv_error_set(err, r, "%s: bringing it up: %s", what, why(r));
out:
	nl_close(&n);
	return r;
}

/* ---- addresses ---- */

int sv_nl_addr_add(int index, uint32_t addr, int prefix, struct sv_error *err)
{
	struct nl n;
	int r = nl_open(&n, err);
	if (r < 0)
		return r;
	struct nlmsghdr *h = nl_msg(&n, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)prefix;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)index;
	mnl_attr_put_u32(h, IFA_LOCAL, addr);
	mnl_attr_put_u32(h, IFA_ADDRESS, addr);
	if (prefix < 31) {
		uint32_t bcast = addr | htonl(prefix ? (1u << (32 - prefix)) - 1 : 0xffffffffu);
		mnl_attr_put_u32(h, IFA_BROADCAST, bcast);
	}
	r = nl_talk(&n, h, NULL, NULL);
	nl_close(&n);
	if (r == -EEXIST)
		return 0;
	if (r < 0) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &addr, a, sizeof(a));
		return sv_error_set(err, r, "adding the address %s/%d: %s", a, prefix, why(r));
	}
	return 0;
}

/* ---- routes ---- */

struct route_scan {
	uint32_t net, mask;
	int prefix, except;
	char *why;
	size_t size;
	int hit;
};

static uint32_t mask_of(int prefix)
{
	return prefix ? htonl(0xffffffffu << (32 - prefix)) : 0;
}

static int route_cb(const struct nlmsghdr *h, void *data)
{
	struct route_scan *s = data;
	const struct rtmsg *rt = mnl_nlmsg_get_payload(h);
	struct nlattr *a;
	uint32_t dst = 0, table = rt->rtm_table;
	int oif = 0;

	if (h->nlmsg_type != RTM_NEWROUTE || rt->rtm_family != AF_INET || s->hit)
		return MNL_CB_OK;
	mnl_attr_for_each(a, h, sizeof(*rt)) {
		switch (mnl_attr_get_type(a)) {
		case RTA_DST:
			if (mnl_attr_get_payload_len(a) == 4)
				dst = mnl_attr_get_u32(a);
			break;
		case RTA_OIF:
			oif = (int)mnl_attr_get_u32(a);
			break;
		case RTA_TABLE:
			table = mnl_attr_get_u32(a);
			break;
		}
	}
	if (table != RT_TABLE_MAIN || rt->rtm_dst_len == 0 || rt->rtm_type != RTN_UNICAST)
		return MNL_CB_OK;
	if (s->except > 0 && oif == s->except)
		return MNL_CB_OK;
	/* Two prefixes overlap when the shorter one contains the longer. */
	int p = rt->rtm_dst_len < s->prefix ? rt->rtm_dst_len : s->prefix;
	uint32_t m = mask_of(p);
	if ((dst & m) != (s->net & m))
		return MNL_CB_OK;
	char a4[INET_ADDRSTRLEN], dev[IF_NAMESIZE] = "";
	inet_ntop(AF_INET, &dst, a4, sizeof(a4));
	if (oif > 0 && !if_indextoname((unsigned)oif, dev))
		dev[0] = '\0';
	snprintf(s->why, s->size, "%s/%d%s%s", a4, rt->rtm_dst_len, dev[0] ? " dev " : "", dev);
	s->hit = 1;
	return MNL_CB_OK;
}

int sv_nl_route_conflict(uint32_t net, int prefix, int except_index, char *why_out,
                         size_t size, struct sv_error *err)
{
	struct nl n;
	int r = nl_open(&n, err);
	if (r < 0)
		return r;
	struct route_scan s = { .net = net, .prefix = prefix, .except = except_index,
	                        .why = why_out, .size = size };
	struct nlmsghdr *h = nl_msg(&n, RTM_GETROUTE, NLM_F_DUMP);
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));
	rt->rtm_family = AF_INET;
	r = nl_talk(&n, h, route_cb, &s);
	nl_close(&n);
	if (r < 0)
		return sv_error_set(err, r, "reading the routes: %s", strerror(-r));
	return s.hit;
}
