/*
 * The pure profile -> QEMU argv builder. Devices, block nodes and netdevs use
 * QEMU's JSON forms (-device/-blockdev/-netdev '{...}'), so no profile value
 * can add an option; the few values that go into comma-separated option
 * strings (socket paths, names, addresses) pass through sv_qemu_escape().
 *
 * QEMU opens none of the profile's files by path: each is listed in
 * out->fds with the fd number QEMU will inherit it as (qsupd opens it, see
 * fdpass.h). Block nodes and the serial log use fd sets (-add-fd fd=N,set=N
 * and "/dev/fdset/N"); the kernel, initrd and -bios, which QEMU reads with
 * plain file calls, are "/proc/self/fd/N". A qcow2 image's backing chain is
 * spelled out node by node (facts->chains), each layer its own fd, and
 * "backing": null ends it, so QEMU never resolves a backing file name
 * itself. The -append text is one argv element that QEMU takes whole.
 *
 * Device layout: on q35 every virtio disk and every NIC sits on its own
 * pcie-root-port ("port.ID"), so that it can be hot-unplugged (ACPI hot-plug,
 * QEMU's default), followed by hotplug-slots spare ports ("hotplug.N").
 * Controllers and the display sit on pcie.0. On pc (i440fx) devices go on
 * pci.0. Our own ids contain a '.', which profile ids cannot, so they never
 * clash.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "argv.h"

struct build {
	const struct sv_profile *p;
	const struct sv_facts *f;
	struct sv_strv v;
	struct sv_strv *warnings;
	struct sv_error *err;
	int *bootindex;         /* per device: drives, then NICs; -1 none */
	unsigned chassis;       /* last pcie-root-port chassis number */
	unsigned ahci, ide, scsi;       /* next free port/unit/target */
	bool scsi_ctrl, ahci_ctrl;
	enum sv_accel accel;
	int next_fd;            /* the next fd number for out->fds */
	struct sv_fd_need *fds;
	size_t nfds;
	int r;
};

int sv_facts_init(struct sv_facts *f, const char *run_dir, const char *name)
{
	int a, b, c;

	memset(f, 0, sizeof(*f));
	f->kvm_usable = true;
	f->qmp_fd = -1;
	f->serial_fd = -1;
	f->chains = NULL;
	f->tops = NULL;
	f->vnc_display = -1;
	a = snprintf(f->qmp_path, sizeof(f->qmp_path), "%s/%s/qmp.sock", run_dir, name);
	b = snprintf(f->serial_path, sizeof(f->serial_path), "%s/%s/serial.sock",
	             run_dir, name);
	c = snprintf(f->agent_path, sizeof(f->agent_path), "%s/%s/agent.sock", run_dir, name);
	if (a < 0 || b < 0 || c < 0 || (size_t)a >= sizeof(f->qmp_path) ||
	    (size_t)b >= sizeof(f->serial_path) || (size_t)c >= sizeof(f->agent_path))
		return -ENAMETOOLONG;
	return 0;
}

/* ------------------------------------------------------------ emitting */

static void add(struct build *b, const char *s)
{
	if (!b->r && sv_strv_push(&b->v, s) < 0)
		b->r = -ENOMEM;
}

static void addf(struct build *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void addf(struct build *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (!b->r && sv_strv_vpushf(&b->v, fmt, ap) < 0)
		b->r = -ENOMEM;
	va_end(ap);
}

/* Add opt and the compact JSON text of obj (a new reference, consumed). */
static void add_json(struct build *b, const char *opt, json_t *obj)
{
	char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

	json_decref(obj);
	if (!s) {
		b->r = b->r ? b->r : -ENOMEM;
		return;
	}
	add(b, opt);
	if (!b->r && sv_strv_push_take(&b->v, s) < 0)
		b->r = -ENOMEM;
}

/* Set key to a string / integer / bool in obj, ignoring NULL obj. */
static void jstr(json_t *obj, const char *key, const char *v)
{
	if (obj && v)
		json_object_set_new(obj, key, json_string(v));
}

static void jint(json_t *obj, const char *key, long long v)
{
	if (obj)
		json_object_set_new(obj, key, json_integer(v));
}

static void jbool(json_t *obj, const char *key, bool v)
{
	if (obj)
		json_object_set_new(obj, key, json_boolean(v));
}

/* A new {"driver": driver, "id": id} object. */
static json_t *dev_new(const char *driver, const char *id)
{
	json_t *o = json_object();

	jstr(o, "driver", driver);
	jstr(o, "id", id);
	return o;
}

/* Add fmt with its one %s replaced by the escaped v. */
static void add_escaped(struct build *b, const char *fmt, const char *v)
{
	char *e = sv_qemu_escape(v);

	if (!e)
		b->r = -ENOMEM;
	else
		addf(b, fmt, e);
	free(e);
}

/* The same, for a format with a %s and then a %u. */
static void add_escaped_u(struct build *b, const char *fmt, const char *v, unsigned u)
{
	char *e = sv_qemu_escape(v);

	if (!e)
		b->r = -ENOMEM;
	else
		addf(b, fmt, e, u);
	free(e);
}

/* ------------------------------------------------------------ fds */

static char *dup_or_null(struct build *b, const char *s)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		b->r = -ENOMEM;
	return d;
}

/* List an fd QEMU must inherit; returns its number (-1 out of memory). */
static int need_fd(struct build *b, enum sv_fd_kind kind, int flags, const char *path,
                   const char *fmt, const char *arg)
{
	struct sv_fd_need *v, *n;

	if (b->r)
		return -1;
	v = realloc(b->fds, (b->nfds + 1) * sizeof(*v));
	if (!v) {
		b->r = -ENOMEM;
		return -1;
	}
	b->fds = v;
	n = &v[b->nfds++];
	memset(n, 0, sizeof(*n));
	n->fd = b->next_fd++;
	n->kind = kind;
	n->flags = flags;
	n->path = dup_or_null(b, path);
	if (asprintf(&n->what, fmt, arg) < 0) {
		n->what = NULL;
		b->r = -ENOMEM;
	}
	return n->fd;
}

/* A file QEMU opens through an fd set: -add-fd, and its "/dev/fdset/N". */
static void fdset_path(struct build *b, int flags, const char *path, const char *node,
                       const char *what, const char *arg, char out[32])
{
	int fd = need_fd(b, SV_FD_FILE, flags, path, what, arg);

	add(b, "-add-fd");
	addf(b, "fd=%d,set=%d,opaque=%s", fd, fd, node);
	snprintf(out, 32, "/dev/fdset/%d", fd);
}

/* A file QEMU reads with plain calls: its "/proc/self/fd/N". */
static void read_path(struct build *b, const char *path, const char *what, char out[32])
{
	snprintf(out, 32, "/proc/self/fd/%d", need_fd(b, SV_FD_READ, O_RDONLY, path,
	         "%s", what));
}

static void fd_need_free(struct sv_fd_need *n)
{
	free(n->path);
	free(n->ifname);
	free(n->bridge);
	free(n->network);
	free(n->what);
}

/* ------------------------------------------------------------ machine */

static int accel_choose(struct build *b)
{
	const struct sv_profile *p = b->p;
	char where[32] = "";

	if (p->accel_line > 0)
		snprintf(where, sizeof(where), "%d:", p->accel_line);
	b->accel = p->accel == SV_ACCEL_TCG ? SV_ACCEL_TCG : SV_ACCEL_KVM;
	if (b->accel == SV_ACCEL_TCG || b->f->kvm_usable)
		return 0;
	if (p->accel == SV_ACCEL_KVM)
		return sv_error_set(b->err, -ENODEV, "%s:%s [guest] accel: %s is not "
		                    "usable on this host (/dev/kvm is missing, not "
		                    "accessible, or cannot create a VM); use accel = "
		                    "kvm:tcg to fall back to TCG, or accel = tcg", p->path,
		                    where, p->accel_line ? "kvm" : "kvm (the default)");
	if (p->cpu_model && !strcmp(p->cpu_model, "host"))
		return sv_error_set(b->err, -ENODEV, "%s: [guest] cpu-model: host needs "
		                    "KVM, which is not usable on this host, and accel = "
		                    "kvm:tcg would use TCG; use max", p->path);
	b->accel = SV_ACCEL_TCG;
	if (sv_strv_pushf(b->warnings, "%s:%s warning: [guest] accel: KVM is not "
	                  "usable on this host; falling back to TCG, which is much slower",
	                  p->path, where) < 0)
		return -ENOMEM;
	return 0;
}

/* -sandbox: deny everything QEMU does not need. QEMU never has to spawn
 * (qsupd makes the taps itself), so spawn is denied unless the profile
 * allows it; elevateprivileges=deny is fine because qsupd switches to QEMU's
 * identity itself before exec (QEMU's own -runas would be killed by it). */
static void emit_sandbox(struct build *b)
{
	const struct sv_profile *p = b->p;
	bool spawn = p->sandbox_spawn == SV_SPAWN_ALLOW;

	if (!p->sandbox)
		return;
	add(b, "-sandbox");
	addf(b, "on,obsolete=deny,elevateprivileges=deny,spawn=%s,resourcecontrol=deny",
	     spawn ? "allow" : "deny");
}

static void emit_firmware(struct build *b)
{
	const struct sv_profile *p = b->p;
	static const char *const nodes[2][2] = {
		{ "fw.code.file", "fw.code" }, { "fw.vars.file", "fw.vars" },
	};

	char path[32];

	if (p->firmware == SV_FIRMWARE_BIOS) {
		if (p->bios) {
			read_path(b, p->bios, "bios", path);
			add(b, "-bios");
			add(b, path);
		}
		return;
	}
	for (int i = 0; i < 2; i++) {
		json_t *file, *fmt;

		fdset_path(b, i ? O_RDWR : O_RDONLY, i ? p->uefi_vars : p->uefi_code,
		           nodes[i][0], "%s", i ? "UEFI variables" : "UEFI code", path);
		file = json_object();
		fmt = json_object();
		jstr(file, "driver", "file");
		jstr(file, "filename", path);
		jstr(file, "node-name", nodes[i][0]);
		jstr(fmt, "driver", "raw");
		jstr(fmt, "file", nodes[i][0]);
		jstr(fmt, "node-name", nodes[i][1]);
		if (i == 0) {
			jbool(file, "read-only", true);
			jbool(fmt, "read-only", true);
		}
		add_json(b, "-blockdev", file);
		add_json(b, "-blockdev", fmt);
	}
}

static void emit_machine(struct build *b)
{
	const struct sv_profile *p = b->p;

	emit_sandbox(b);
	add(b, "-machine");
	add_escaped(b, p->firmware == SV_FIRMWARE_UEFI ?
	            "type=%s,pflash0=fw.code,pflash1=fw.vars" : "type=%s", p->machine);
	emit_firmware(b);
	add(b, "-accel");
	add(b, b->accel == SV_ACCEL_KVM ? "kvm" : "tcg");
	if (p->cpu_model) {
		add(b, "-cpu");
		add_escaped(b, "%s", p->cpu_model);
	}
	add(b, "-m");
	if (p->max_memory)
		addf(b, "size=%lluM,slots=%u,maxmem=%lluM",
		     (unsigned long long)(p->memory >> 20), p->slots,
		     (unsigned long long)(p->max_memory >> 20));
	else
		addf(b, "size=%lluM", (unsigned long long)(p->memory >> 20));
	add(b, "-smp");
	if (p->max_cpus > p->cpus)
		addf(b, "cpus=%u,maxcpus=%u", p->cpus, p->max_cpus);
	else
		addf(b, "cpus=%u", p->cpus);
}

/* ------------------------------------------------------------ console */

static void emit_socket(struct build *b, const char *id, const char *path, int fd,
                        const char *log)
{
	char *e = NULL, *l = NULL, logpath[32];

	if (log) {   /* QEMU appends to it through an fd set */
		fdset_path(b, O_WRONLY | O_APPEND | O_CREAT, log, "serial.log", "%s",
		           "serial log", logpath);
		log = logpath;
	}
	add(b, "-chardev");
	if (fd >= 0) {
		if (asprintf(&e, "fd=%d", fd) < 0)
			e = NULL;
	} else {
		char *q = sv_qemu_escape(path);
		if (q && asprintf(&e, "path=%s", q) < 0)
			e = NULL;
		free(q);
	}
	if (!e || (log && !(l = sv_qemu_escape(log))))
		b->r = -ENOMEM;
	else if (!log)
		addf(b, "socket,id=%s,%s,server=on,wait=off", id, e);
	else   /* the console log, whether QEMU got a path or an fd */
		addf(b, "socket,id=%s,%s,server=on,wait=off,logfile=%s,logappend=on", id, e, l);
	free(e);
	free(l);
}

static bool loopback(const char *a)
{
	return !strncmp(a, "127.", 4) || !strcmp(a, "::1") || !strcmp(a, "localhost");
}

static void emit_display(struct build *b)
{
	const struct sv_profile *p = b->p;
	json_t *tablet;

	if (!p->vnc) {
		add(b, "-display");
		add(b, "none");
		return;
	}
	/* A password (password-file, generate) is set over QMP before the
	 * guest runs (set_password), never on the command line: password=on
	 * refuses every client until then. */
	bool pw = p->vnc_password_file || p->vnc_password_generate;
	unsigned display = b->f->vnc_display >= 0 ? (unsigned)b->f->vnc_display
	                 : p->vnc_display_auto ? 0 : p->vnc_display;
	add(b, "-vnc");
	add_escaped_u(b, strchr(p->vnc_listen, ':') ? (pw ? "[%s]:%u,password=on" : "[%s]:%u")
	              : pw ? "%s:%u,password=on" : "%s:%u", p->vnc_listen, display);
	if (!pw && !loopback(p->vnc_listen) &&
	    sv_strv_pushf(b->warnings, "%s: warning: [display] vnc-listen: %s is not "
	                  "a loopback address, and VNC has no password: anyone who "
	                  "can reach it controls the guest", p->path, p->vnc_listen) < 0)
		b->r = -ENOMEM;
	add_json(b, "-device", dev_new("VGA", "video.0"));
	add_json(b, "-device", dev_new("qemu-xhci", "usb.0"));
	tablet = dev_new("usb-tablet", "tablet.0");
	jstr(tablet, "bus", "usb.0.0");
	add_json(b, "-device", tablet);
}

/* The guest agent's channel: a virtio-serial controller (on the root bus,
 * as the other controllers) with one port, org.qemu.guest_agent.0, on a
 * socket chardev QEMU listens on; qsupd binds the socket and hands QEMU the
 * fd (an SV_FD_SOCKET), then connects to its path (agent.h). */
static void emit_agent(struct build *b)
{
	json_t *port;

	if (!b->p->agent)
		return;
	if (b->f->agent_pass)
		emit_socket(b, "agent", NULL, need_fd(b, SV_FD_SOCKET, O_RDWR,
		            b->f->agent_path, "%s", "guest agent"), NULL);
	else
		emit_socket(b, "agent", b->f->agent_path, -1, NULL);
	add_json(b, "-device", dev_new("virtio-serial-pci", "agent.0"));
	port = dev_new("virtserialport", "agent.port");
	jstr(port, "bus", "agent.0.0");
	jstr(port, "chardev", "agent");
	jstr(port, "name", "org.qemu.guest_agent.0");
	add_json(b, "-device", port);
}

/* The memory balloon ([guest] balloon = yes): on the root bus, as the
 * controllers. Free page reporting only when asked: it costs the guest a
 * thread and QEMU madvise calls, and hides memory from the balloon stats. */
static void emit_balloon(struct build *b)
{
	json_t *dev;

	if (!b->p->balloon)
		return;
	dev = dev_new("virtio-balloon-pci", "balloon.0");
	if (b->p->balloon_free_page_reporting)
		jbool(dev, "free-page-reporting", true);
	add_json(b, "-device", dev);
}

static void emit_console(struct build *b)
{
	json_t *serial = dev_new("isa-serial", "serial.0");

	emit_display(b);
	emit_socket(b, "qmp", b->f->qmp_path, b->f->qmp_fd, NULL);
	add(b, "-mon");
	add(b, "chardev=qmp,mode=control");
	emit_socket(b, "serial0", b->f->serial_path, b->f->serial_fd, b->p->serial_log);
	jstr(serial, "chardev", "serial0");
	add_json(b, "-device", serial);
	add_json(b, "-device", dev_new("pvpanic", "pvpanic.0"));
	emit_agent(b);
	emit_balloon(b);
}

static void emit_kernel(struct build *b)
{
	const struct sv_profile *p = b->p;

	char path[32];

	if (!p->kernel)
		return;
	read_path(b, p->kernel, "kernel", path);
	add(b, "-kernel");
	add(b, path);
	if (p->initrd) {
		/* Never a path with commas here: QEMU splits -initrd at them
		 * for multiboot kernels. */
		read_path(b, p->initrd, "initrd", path);
		add(b, "-initrd");
		add(b, path);
	}
	if (p->append) {
		add(b, "-append");
		add(b, p->append);
	}
}

/* ------------------------------------------------------------ devices */

static void bootindex_assign(struct build *b)
{
	const struct sv_profile *p = b->p;

	for (size_t i = 0; i < p->ndrives; i++)
		b->bootindex[i] = p->drives[i].boot_index;
	for (size_t i = 0; i < p->nnics; i++)
		b->bootindex[p->ndrives + i] = p->nics[i].boot_index;
	for (size_t j = 0; j < p->boot_order.n; j++) {
		int i = sv_profile_find_device(p, p->boot_order.v[j]);

		if (i >= 0)     /* from 1: -kernel's option ROM takes bootindex 0 */
			b->bootindex[i] = (int)j + 1;
	}
}

static void emit_port(struct build *b, const char *id)
{
	json_t *port = dev_new("pcie-root-port", id);

	jstr(port, "bus", "pcie.0");
	jint(port, "chassis", ++b->chassis);
	add_json(b, "-device", port);
}

/* Give a hot-pluggable device its own root port on q35 (pci.0 on pc). */
static void place(struct build *b, json_t *dev, const char *id)
{
	char port[32];

	if (b->p->family != SV_MACHINE_Q35)
		return;
	snprintf(port, sizeof(port), "port.%s", id);
	emit_port(b, port);
	jstr(dev, "bus", port);
}

/* One layer of drive d: a file node on its own fd and a format node over
 * it. backing names the format node under it; "" ends the chain ("backing":
 * null), NULL leaves the key out (formats without one). */
static void emit_layer(struct build *b, const struct sv_drive *d, const char *path,
                       const char *format, bool ro, const char *backing, size_t k)
{
	bool direct = d->cache == SV_CACHE_NONE || d->cache == SV_CACHE_DIRECTSYNC;
	bool dev = !strncmp(path, "/dev/", 5);
	char fnode[32], dnode[32], fdpath[32], what[64];
	json_t *file, *fmt, *cache;
	static const char *const aios[] = { "threads", "native", "io_uring" };

	snprintf(fnode, sizeof(fnode), k ? "file.%s.b%zu" : "file.%s", d->id, k);
	snprintf(dnode, sizeof(dnode), k ? "drive.%s.b%zu" : "drive.%s", d->id, k);
	if (k)
		snprintf(what, sizeof(what), "%s %s (backing file %zu)",
		         d->cdrom ? "cdrom" : "disk", d->id, k);
	else
		snprintf(what, sizeof(what), "%s %s", d->cdrom ? "cdrom" : "disk", d->id);
	fdset_path(b, ro ? O_RDONLY : O_RDWR, path, fnode, "%s", what, fdpath);
	file = json_object();
	fmt = json_object();
	jstr(file, "driver", !dev ? "file" : d->cdrom ? "host_cdrom" : "host_device");
	jstr(file, "filename", fdpath);
	jstr(file, "node-name", fnode);
	jstr(fmt, "driver", format);
	jstr(fmt, "file", fnode);
	jstr(fmt, "node-name", dnode);
	if (ro) {
		jbool(file, "read-only", true);
		jbool(fmt, "read-only", true);
	}
	if (d->aio != SV_AIO_THREADS)
		jstr(file, "aio", aios[d->aio]);
	/* Only what differs from QEMU's defaults (-blockdev: read-only,
	 * cache.direct and cache.no-flush off), so cache holds the one flag
	 * that is on. */
	if (direct || d->cache == SV_CACHE_UNSAFE) {
		cache = direct ? json_pack("{s:b}", "direct", true)
		               : json_pack("{s:b}", "no-flush", true);
		if (file && cache)
			json_object_set(file, "cache", cache);
		if (fmt && cache)
			json_object_set(fmt, "cache", cache);
		json_decref(cache);
	}
	if (fmt && backing)
		json_object_set_new(fmt, "backing", *backing ? json_string(backing) : json_null());
	add_json(b, "-blockdev", file);
	add_json(b, "-blockdev", fmt);
}

/* Drive i's block nodes: its backing chain bottom up (read-only, each
 * layer backed by the one under it), then the image itself. A qcow2 image
 * always names its backing, null when it has none. */
static void emit_blockdevs(struct build *b, size_t i)
{
	const struct sv_drive *d = &b->p->drives[i];
	const struct sv_chain *ch = b->f->chains ? &b->f->chains[i] : NULL;
	const char *top = b->f->tops && b->f->tops[i] ? b->f->tops[i] : d->file;
	const char *topfmt = top != d->file ? "qcow2" : d->format;
	bool cow = !strcmp(topfmt, "qcow2");
	size_t n = cow && ch ? ch->n : 0;
	char below[32] = "";

	for (size_t k = n; k-- > 0;) {
		const struct sv_layer *l = &ch->layers[k];

		emit_layer(b, d, l->path, l->format, true,
		           !strcmp(l->format, "qcow2") ? below : NULL, k + 1);
		snprintf(below, sizeof(below), "drive.%s.b%zu", d->id, k + 1);
	}
	emit_layer(b, d, top, topfmt, d->read_only, cow ? below : NULL, 0);
}

static void attach_ide(struct build *b, json_t *dev, const struct sv_drive *d)
{
	char bus[16];

	if (b->p->family == SV_MACHINE_Q35) {
		snprintf(bus, sizeof(bus), "ide.%u", b->ahci++);
	} else if (d->bus == SV_BUS_IDE) {
		snprintf(bus, sizeof(bus), "ide.%u", b->ide / 2);
		jint(dev, "unit", b->ide++ % 2);
	} else {
		if (!b->ahci_ctrl)
			add_json(b, "-device", dev_new("ich9-ahci", "sata.0"));
		b->ahci_ctrl = true;
		snprintf(bus, sizeof(bus), "sata.0.%u", b->ahci++);
	}
	jstr(dev, "bus", bus);
}

static void attach(struct build *b, json_t *dev, const struct sv_drive *d)
{
	switch (d->bus) {
	case SV_BUS_VIRTIO:
		place(b, dev, d->id);
		break;
	case SV_BUS_SCSI:
		if (!b->scsi_ctrl)
			add_json(b, "-device", dev_new("virtio-scsi-pci", "scsi.0"));
		b->scsi_ctrl = true;
		jstr(dev, "bus", "scsi.0.0");
		jint(dev, "scsi-id", b->scsi++);
		break;
	case SV_BUS_IDE:
	case SV_BUS_SATA:
		attach_ide(b, dev, d);
		break;
	}
}

static void emit_drive(struct build *b, size_t i)
{
	const struct sv_drive *d = &b->p->drives[i];
	static const char *const hd[] = { "virtio-blk-pci", "scsi-hd", "ide-hd", "ide-hd" };
	static const char *const cd[] = { "", "scsi-cd", "ide-cd", "ide-cd" };
	char node[32];
	json_t *dev;

	if (d->file)
		emit_blockdevs(b, i);
	dev = dev_new(d->cdrom ? cd[d->bus] : hd[d->bus], d->id);
	attach(b, dev, d);
	snprintf(node, sizeof(node), "drive.%s", d->id);
	if (d->file)
		jstr(dev, "drive", node);
	jstr(dev, "serial", d->serial);
	if (b->bootindex[i] >= 0)
		jint(dev, "bootindex", b->bootindex[i]);
	if (d->cache == SV_CACHE_WRITETHROUGH || d->cache == SV_CACHE_DIRECTSYNC)
		jstr(dev, "write-cache", "off");
	add_json(b, "-device", dev);
}

/* A bridge or tap NIC's tap, made or opened by qsupd: its fd number. */
static int tap_fd(struct build *b, const struct sv_nic *n)
{
	bool br = n->type == SV_NIC_BRIDGE || n->type == SV_NIC_NETWORK;
	int fd = need_fd(b, br ? SV_FD_BRIDGE : SV_FD_TAP, O_RDWR, NULL, "nic %s", n->id);

	if (fd >= 0 && br) {
		const char *bridge = n->bridge;
		if (n->type == SV_NIC_NETWORK) {
			bridge = b->f->net_bridge ? b->f->net_bridge(b->f->net_ctx, n->network)
			                          : NULL;
			/* a network the host does not define: the daemon refuses the
			 * start before; --print-argv shows its name */
			if (!bridge)
				bridge = n->network;
			b->fds[b->nfds - 1].network = dup_or_null(b, n->network);
		}
		b->fds[b->nfds - 1].bridge = dup_or_null(b, bridge);
		memcpy(b->fds[b->nfds - 1].mac, n->mac, 6);
	} else if (fd >= 0) {
		b->fds[b->nfds - 1].ifname = dup_or_null(b, n->ifname);
	}
	return fd;
}

static json_t *netdev_new(struct build *b, const struct sv_nic *n, const char *id)
{
	json_t *o = json_object(), *fwds;
	char rule[64], fd[16];

	jstr(o, "type", n->type == SV_NIC_USER ? "user" : "tap");
	jstr(o, "id", id);
	if (n->type != SV_NIC_USER) {
		/* QEMU reads vnet_hdr from the fd; it refuses the option with fd. */
		snprintf(fd, sizeof(fd), "%d", tap_fd(b, n));
		jstr(o, "fd", fd);
		if (b->f->vhost_net && n->model == SV_NIC_VIRTIO) {
			/* vhost-net moves the packets in the kernel; QEMU gets it
			 * open, as it gets the tap */
			snprintf(fd, sizeof(fd), "%d", need_fd(b, SV_FD_VHOST, O_RDWR,
			         "/dev/vhost-net", "nic %s vhost-net", n->id));
			jbool(o, "vhost", true);
			jstr(o, "vhostfd", fd);
		}
	} else if (n->nforwards && (fwds = json_array())) {
		for (size_t i = 0; i < n->nforwards; i++) {
			const struct sv_forward *f = &n->forwards[i];

			snprintf(rule, sizeof(rule), "%s:%s:%u-%s:%u", f->udp ? "udp" : "tcp",
			         f->host_addr, f->host_port, f->guest_addr, f->guest_port);
			json_array_append_new(fwds, json_pack("{s:s}", "str", rule));
		}
		if (o)
			json_object_set(o, "hostfwd", fwds);
		json_decref(fwds);
	}
	return o;
}

static void emit_nic(struct build *b, size_t i)
{
	const struct sv_nic *n = &b->p->nics[i];
	static const char *const models[] = { "virtio-net-pci", "e1000e", "e1000", "rtl8139" };
	char netid[32], mac[18];
	json_t *dev;

	snprintf(netid, sizeof(netid), "net.%s", n->id);
	sv_mac_format(n->mac, mac);
	add_json(b, "-netdev", netdev_new(b, n, netid));
	dev = dev_new(models[n->model], n->id);
	place(b, dev, n->id);
	jstr(dev, "netdev", netid);
	jstr(dev, "mac", mac);
	if (b->bootindex[b->p->ndrives + i] >= 0)
		jint(dev, "bootindex", b->bootindex[b->p->ndrives + i]);
	add_json(b, "-device", dev);
}

static void emit_devices(struct build *b)
{
	const struct sv_profile *p = b->p;
	char id[32];

	for (size_t i = 0; i < p->ndrives; i++)
		emit_drive(b, i);
	for (size_t i = 0; i < p->nnics; i++)
		emit_nic(b, i);
	for (unsigned i = 0; i < p->hotplug_slots; i++) {
		snprintf(id, sizeof(id), "hotplug.%u", i);
		emit_port(b, id);
	}
}

static int check_facts(struct build *b)
{
	const struct sv_facts *f = b->f;

	if ((f->qmp_fd < 0 && !f->qmp_path[0]) || (f->serial_fd < 0 && !f->serial_path[0]))
		return sv_error_set(b->err, -EINVAL, "%s: no QMP or serial socket path "
		                    "given to the argv builder", b->p->path);
	if (strnlen(f->qmp_path, SV_SOCK_PATH_MAX) >= SV_SOCK_PATH_MAX ||
	    strnlen(f->serial_path, SV_SOCK_PATH_MAX) >= SV_SOCK_PATH_MAX)
		return sv_error_set(b->err, -ENAMETOOLONG, "%s: socket path too long "
		                    "for a unix socket (at most %d bytes); use a shorter "
		                    "run dir", b->p->path, SV_SOCK_PATH_MAX - 1);
	return 0;
}

int sv_argv_build(const struct sv_profile *p, const struct sv_facts *f,
                  struct sv_argv *out, struct sv_error *err)
{
	struct build b = { .p = p, .f = f, .warnings = &out->warnings, .err = err,
	                   .next_fd = SV_FD_FIRST };
	size_t ndev = p->ndrives + p->nnics;

	memset(out, 0, sizeof(*out));
	b.r = check_facts(&b);
	if (!b.r)
		b.r = accel_choose(&b);
	if (!b.r && !(b.bootindex = malloc((ndev + 1) * sizeof(int))))
		b.r = -ENOMEM;
	if (!b.r) {
		bootindex_assign(&b);
		add(&b, p->binary);
		add(&b, "-name");
		add_escaped(&b, "guest=%s,debug-threads=on", p->name);
		add(&b, "-nodefaults");
		add(&b, "-no-user-config");
		add(&b, "-S");
		add(&b, "-msg");
		add(&b, "timestamp=on");
		emit_machine(&b);
		emit_console(&b);
		emit_kernel(&b);
		emit_devices(&b);
		for (size_t i = 0; i < p->extra_args.n; i++)
			add(&b, p->extra_args.v[i]);
		if (b.f->incoming) {
			add(&b, "-incoming");
			add(&b, "defer");
		}
	}
	free(b.bootindex);
	if (b.r == -ENOMEM)
		sv_error_set(err, -ENOMEM, "%s: out of memory building the QEMU argv", p->path);
	if (b.r) {
		sv_strv_free(&b.v);
		sv_strv_free(&out->warnings);
		for (size_t i = 0; i < b.nfds; i++)
			fd_need_free(&b.fds[i]);
		free(b.fds);
		return b.r;
	}
	out->argc = b.v.n;
	out->argv = sv_strv_steal(&b.v);
	out->accel = b.accel;
	out->fds = b.fds;
	out->nfds = b.nfds;
	return 0;
}

json_t *sv_argv_fds_json(const struct sv_argv *a)
{
	static const char *const kinds[] = { "file", "read", "tap", "bridge", "vhost", "socket" };
	json_t *list = json_array();

	for (size_t i = 0; list && i < a->nfds; i++) {
		const struct sv_fd_need *n = &a->fds[i];
		int acc = n->flags & O_ACCMODE;
		json_t *o = json_pack("{s:i, s:s, s:s}", "fd", n->fd, "kind", kinds[n->kind],
		                      "what", n->what ? n->what : "");

		if (n->path)
			json_object_set_new(o, "path", json_string(n->path));
		if (n->ifname)
			json_object_set_new(o, "ifname", json_string(n->ifname));
		if (n->bridge)
			json_object_set_new(o, "bridge", json_string(n->bridge));
		if (n->network)
			json_object_set_new(o, "network", json_string(n->network));
		if (n->kind == SV_FD_FILE)
			json_object_set_new(o, "mode", json_string(acc == O_RDWR ? "read-write"
			                    : acc == O_WRONLY ? "append" : "read-only"));
		json_array_append_new(list, o);
	}
	return list;
}

bool sv_argv_node_device(const char *node, char *id, size_t size)
{
	const char *dot = strchr(node, '.'), *end;
	char buf[SV_ID_MAX + 1];
	size_t n;

	if (dot) {
		end = strchr(dot + 1, '.');
		n = end ? (size_t)(end - dot - 1) : strlen(dot + 1);
		if (n < sizeof(buf)) {
			memcpy(buf, dot + 1, n);
			buf[n] = '\0';
			if (sv_device_id_valid(buf) && (!end || ((end[1] == 'b' || end[1] == 's') && end[2] &&
			    strspn(end + 2, "0123456789") == strlen(end + 2)))) {
				snprintf(id, size, "%s", buf);
				return true;
			}
		}
	}
	snprintf(id, size, "%s", node);
	return false;
}

void sv_chain_free(struct sv_chain *c)
{
	for (size_t i = 0; c && i < c->n; i++) {
		free(c->layers[i].path);
		free(c->layers[i].format);
	}
	if (c)
		c->n = 0;
}

json_t *sv_argv_json(const struct sv_argv *a)
{
	json_t *list = json_array();
	for (size_t i = 0; list && i < a->argc; i++)
		json_array_append_new(list, json_string(a->argv[i]));
	return list;
}

void sv_argv_free(struct sv_argv *a)
{
	sv_strv_free_array(a->argv);
	sv_strv_free(&a->warnings);
	for (size_t i = 0; i < a->nfds; i++)
		fd_need_free(&a->fds[i]);
	free(a->fds);
	memset(a, 0, sizeof(*a));
}
