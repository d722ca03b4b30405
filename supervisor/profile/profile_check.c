/*
 * Profile rules that involve more than one key, and the defaults derived
 * from other keys (max-cpus, slots, MACs, firmware paths, the bridge
 * helper). Runs once the whole file has been read; reports at the line of
 * the key that is wrong, or at the section header for a missing key.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "profile_int.h"
#include "setkeys.h"

#define MAX_CPUS_Q35 288
#define MAX_CPUS_PC 255
#define Q35_AHCI_PORTS 6
#define PC_IDE_UNITS 4
#define PC_AHCI_PORTS 6
/* q35's pcie.0 has 30 free slots with -nodefaults (0 is the host bridge,
 * 0x1f the ICH9 functions); root ports and integrated devices share them. */
#define Q35_FREE_SLOTS 30

static struct psect *sect1(struct pctx *c, enum sect_kind kind)
{
	for (size_t i = 0; i < c->nsects; i++)
		if (c->sects[i].kind == kind)
			return &c->sects[i];
	return NULL;
}

/* Report against key of the single section of this kind (present or not). */
static void serr(struct pctx *c, enum sect_kind kind, const char *key,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void serr(struct pctx *c, enum sect_kind kind, const char *key,
                 const char *fmt, ...)
{
	struct psect *s = sect1(c, kind);
	char *what;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&what, fmt, ap);
	va_end(ap);
	if (r < 0) {
		c->oom = true;
		return;
	}
	if (s)
		pc_report(c, pc_key_line(s, key), s->name, key, "%s", what);
	else
		pc_report(c, 0, pc_sect_defs[kind].name, key, "%s", what);
	free(what);
}

static bool given(struct pctx *c, enum sect_kind kind, const char *key)
{
	struct psect *s = sect1(c, kind);

	return s && pc_key_given(s, key);
}

static void set_default(struct pctx *c, char **field, const char *v)
{
	if (!*field && !(*field = strdup(v)))
		c->oom = true;
}

/* ------------------------------------------------------------ [guest] */

static void check_cpus_memory(struct pctx *c, struct sv_profile *p)
{
	unsigned limit = p->family == SV_MACHINE_Q35 ? MAX_CPUS_Q35 : MAX_CPUS_PC;

	if (!p->max_cpus)
		p->max_cpus = p->cpus;
	if (p->cpus > p->max_cpus)
		serr(c, SECT_GUEST, "max-cpus", "%u is below cpus (%u); max-cpus must be "
		     "at least cpus", p->max_cpus, p->cpus);
	else if (p->max_cpus > limit)
		serr(c, SECT_GUEST, given(c, SECT_GUEST, "max-cpus") ? "max-cpus" : "cpus",
		     "%u is more than machine %s allows; use at most %u", p->max_cpus,
		     p->machine, limit);
	if (p->max_memory && p->max_memory <= p->memory)
		serr(c, SECT_GUEST, "max-memory", "must be above memory (%lluM); it sets "
		     "the ceiling for memory hot-plug", (unsigned long long)(p->memory >> 20));
	if (p->slots && !p->max_memory)
		serr(c, SECT_GUEST, "slots", "needs max-memory; slots are for memory "
		     "hot-plug up to max-memory");
	if (p->max_memory && !p->slots)
		p->slots = 4;
}

static void check_firmware(struct pctx *c, struct sv_profile *p)
{
	static const char *const uefi_keys[] = { "uefi-code", "uefi-vars", "uefi-vars-template" };

	if (p->firmware == SV_FIRMWARE_BIOS) {
		for (size_t i = 0; i < 3; i++)
			if (given(c, SECT_GUEST, uefi_keys[i]))
				serr(c, SECT_GUEST, uefi_keys[i], "only allowed with firmware = uefi");
		return;
	}
	if (p->bios)
		serr(c, SECT_GUEST, "bios", "only allowed with firmware = bios");
	if (!p->uefi_vars && !given(c, SECT_GUEST, "uefi-vars"))
		serr(c, SECT_GUEST, "uefi-vars", "missing; firmware = uefi needs a "
		     "writable per-guest copy of the UEFI variables, such as "
		     "uefi-vars = /var/lib/qsup/NAME_VARS.fd");
	set_default(c, &p->uefi_code, "/usr/share/OVMF/OVMF_CODE_4M.fd");
	set_default(c, &p->uefi_vars_template, "/usr/share/OVMF/OVMF_VARS_4M.fd");
}

static void check_guest(struct pctx *c)
{
	struct sv_profile *p = c->p;
	struct psect *g = sect1(c, SECT_GUEST);

	if (g && pc_key_given(g, "accel"))
		p->accel_line = pc_key_line(g, "accel");
	check_cpus_memory(c, p);
	check_firmware(c, p);
	if (p->initrd && !p->kernel)
		serr(c, SECT_GUEST, "initrd", "needs kernel; an initrd is only used "
		     "with direct kernel boot");
	if (p->append && !p->kernel)
		serr(c, SECT_GUEST, "append", "needs kernel; a command line is only used "
		     "with direct kernel boot");
	if (p->cpu_model && !strcmp(p->cpu_model, "host") && p->accel == SV_ACCEL_TCG)
		serr(c, SECT_GUEST, "cpu-model", "host needs KVM but accel is tcg; use max "
		     "for the most features TCG offers");
	if (p->family == SV_MACHINE_PC) {
		if (given(c, SECT_GUEST, "hotplug-slots"))
			serr(c, SECT_GUEST, "hotplug-slots", "only for q35 machines; "
			     "machine %s hot-plugs into the free slots of its PCI bus",
			     p->machine);
		p->hotplug_slots = 0;
	}
}

/* ------------------------------------------------------------ drives */

static void check_drive(struct pctx *c, struct sv_drive *d, struct psect *s)
{
	if (!d->cdrom && !d->file && !pc_key_given(s, "file"))
		pc_key_error(c, s, "file", "missing; every disk needs file = PATH");
	if (!d->cdrom && !d->format && !pc_key_given(s, "format"))
		pc_key_error(c, s, "format", "missing; QEMU is never left to probe a "
		             "disk's format: give format = raw, qcow2, vmdk, vdi, vhdx, "
		             "vpc or qed");
	if (d->cdrom && !d->format && !(d->format = strdup("raw")))
		c->oom = true;
	if (d->cdrom && !d->file && !pc_key_given(s, "file") && pc_key_given(s, "format"))
		pc_key_error(c, s, "format", "needs file; an empty CD-ROM drive has "
		             "no format");
	if (d->size && d->read_only)
		pc_key_error(c, s, "size", "not allowed with read-only = yes; a created "
		             "image would be empty");
	if (d->aio == SV_AIO_NATIVE && d->cache != SV_CACHE_NONE &&
	    d->cache != SV_CACHE_DIRECTSYNC)
		pc_key_error(c, s, "aio", "native needs cache = none or directsync "
		             "(O_DIRECT); use threads or io_uring with this cache mode");
	if (!d->cdrom) {
		char why[200];
		int last = 0, line;
		/* reported at the last limit written */
		for (int i = 0; i < SV_IOTUNE_N; i++)
			if ((line = pc_key_line(s, sv_iotune_keys[i])) > pc_key_line(s, sv_iotune_keys[last]))
				last = i;
		if (sv_iotune_check(d->iotune, why, sizeof(why)) < 0)
			pc_key_error(c, s, sv_iotune_keys[last], "%s", why);
	}
	for (size_t i = 0; d->file && i < s->index; i++) {
		struct sv_drive *o = &c->p->drives[i];

		if (o->file && !strcmp(o->file, d->file))
			pc_key_error(c, s, "file", "\"%s\" is already used by [%s.%s]; "
			             "give each drive its own file", d->file,
			             o->cdrom ? "cdrom" : "disk", o->id);
	}
}

/* Enough controller ports for every IDE/SATA drive on this machine? */
static void check_buses(struct pctx *c)
{
	struct sv_profile *p = c->p;
	unsigned ide = 0, sata = 0;

	for (size_t i = 0; i < p->ndrives; i++) {
		struct sv_drive *d = &p->drives[i];
		struct psect *s = pc_sect_of(c, d->cdrom ? SECT_CDROM : SECT_DISK, i);
		bool q35 = p->family == SV_MACHINE_Q35;

		if (d->bus == SV_BUS_IDE && !q35 && ++ide > PC_IDE_UNITS)
			pc_key_error(c, s, "bus", "no free IDE unit: machine %s has %d; "
			             "use sata, scsi or virtio", p->machine, PC_IDE_UNITS);
		if (((d->bus == SV_BUS_IDE && q35) || d->bus == SV_BUS_SATA) &&
		    ++sata > (q35 ? Q35_AHCI_PORTS : PC_AHCI_PORTS))
			pc_key_error(c, s, "bus", "no free SATA port: the AHCI controller "
			             "has %d%s; use scsi or virtio", Q35_AHCI_PORTS,
			             q35 ? " (ide and sata share them on q35)" : "");
	}
}

static void check_drives(struct pctx *c)
{
	for (size_t i = 0; i < c->p->ndrives; i++) {
		struct sv_drive *d = &c->p->drives[i];

		check_drive(c, d, pc_sect_of(c, d->cdrom ? SECT_CDROM : SECT_DISK, i));
	}
	check_buses(c);
}

/* ------------------------------------------------------------ NICs */

static void check_nic_keys(struct pctx *c, struct sv_nic *n, struct psect *s)
{
	static const struct { const char *key; enum sv_nic_type type; } only[] = {
		{ "bridge", SV_NIC_BRIDGE },
		{ "ifname", SV_NIC_TAP }, { "forward", SV_NIC_USER },
		{ "network", SV_NIC_NETWORK },
	};
	static const char *const types[] = { "user", "bridge", "tap", "network" };

	for (size_t i = 0; i < sizeof(only) / sizeof(only[0]); i++)
		if (pc_key_given(s, only[i].key) && n->type != only[i].type)
			pc_key_error(c, s, only[i].key, "only allowed with type = %s",
			             types[only[i].type]);
	if (n->type == SV_NIC_BRIDGE && !n->bridge && !pc_key_given(s, "bridge"))
		pc_key_error(c, s, "bridge", "missing; type = bridge needs the bridge "
		             "to join, such as bridge = br0");
	if (n->type == SV_NIC_NETWORK && !n->network && !pc_key_given(s, "network"))
		pc_key_error(c, s, "network", "missing; type = network needs the network "
		             "to join, such as network = default");
	if (n->type == SV_NIC_TAP && !n->ifname && !pc_key_given(s, "ifname"))
		pc_key_error(c, s, "ifname", "missing; type = tap needs a pre-made tap "
		             "device, such as ifname = tap0");
}

static void check_nics(struct pctx *c)
{
	struct sv_profile *p = c->p;

	for (size_t i = 0; i < p->nnics; i++) {
		struct sv_nic *n = &p->nics[i];
		struct psect *s = pc_sect_of(c, SECT_NIC, i);

		check_nic_keys(c, n, s);
		if (!pc_key_given(s, "mac") && p->name)
			sv_mac_stable(p->name, n->id, n->mac);
		for (size_t j = 0; j < i; j++)
			if (!memcmp(p->nics[j].mac, n->mac, 6)) {
				char m[18];

				sv_mac_format(n->mac, m);
				pc_key_error(c, s, "mac", "%s is already used by [nic.%s]; "
				             "give each NIC its own MAC", m, p->nics[j].id);
			}
	}
}

/* ------------------------------------------------------------ boot */

static struct psect *device_sect(struct pctx *c, size_t i)
{
	struct sv_profile *p = c->p;

	if (i < p->ndrives)
		return pc_sect_of(c, p->drives[i].cdrom ? SECT_CDROM : SECT_DISK, i);
	return pc_sect_of(c, SECT_NIC, i - p->ndrives);
}

static int *boot_index_of(struct sv_profile *p, size_t i)
{
	return i < p->ndrives ? &p->drives[i].boot_index
	                      : &p->nics[i - p->ndrives].boot_index;
}

static void check_boot(struct pctx *c)
{
	struct sv_profile *p = c->p;
	size_t ndev = p->ndrives + p->nnics;

	for (size_t i = 0; i < ndev; i++) {
		struct psect *s = device_sect(c, i);
		int bi = *boot_index_of(p, i);

		if (bi >= 0 && p->boot_order.n)
			pc_key_error(c, s, "boot-index", "not allowed together with "
			             "boot-order in [guest]; use one or the other");
		if (bi == 0 && p->kernel)
			pc_key_error(c, s, "boot-index", "0 is taken by direct kernel boot "
			             "(kernel in [guest]); start at 1");
		for (size_t j = 0; bi >= 0 && j < i; j++)
			if (*boot_index_of(p, j) == bi)
				pc_key_error(c, s, "boot-index", "%d is already used by [%s]",
				             bi, device_sect(c, j)->name);
	}
	for (size_t i = 0; i < p->boot_order.n; i++)
		if (sv_profile_find_device(p, p->boot_order.v[i]) < 0)
			serr(c, SECT_GUEST, "boot-order", "\"%s\" is not a disk, CD-ROM or "
			     "NIC of this profile", p->boot_order.v[i]);
}

/* q35: every virtio disk and NIC has its own pcie-root-port (so it can be
 * unplugged), plus the spare ones; make sure they fit on pcie.0. */
static void check_ports(struct pctx *c)
{
	struct sv_profile *p = c->p;
	unsigned ports = p->hotplug_slots + (unsigned)p->nnics, other = 0;
	bool scsi = false;

	if (p->family != SV_MACHINE_Q35)
		return;
	for (size_t i = 0; i < p->ndrives; i++) {
		ports += p->drives[i].bus == SV_BUS_VIRTIO;
		scsi |= p->drives[i].bus == SV_BUS_SCSI;
	}
	other = (unsigned)scsi + (p->vnc ? 2 : 0);      /* virtio-scsi; VGA + xhci */
	other += p->balloon;                            /* virtio-balloon-pci */
	if (ports + other > Q35_FREE_SLOTS)
		serr(c, SECT_GUEST, "hotplug-slots", "%u spare plus %u device root ports "
		     "do not fit: q35 has %u free slots on pcie.0 and %u are taken by "
		     "other devices; use fewer", p->hotplug_slots, ports - p->hotplug_slots,
		     Q35_FREE_SLOTS, other);
}

/* ------------------------------------------------------------ the rest */

static void check_misc(struct pctx *c)
{
	struct sv_profile *p = c->p;
	static const char *const vnc_keys[] = { "vnc-listen", "vnc-display", "password-file",
	                                        "password" };

	if (p->balloon_free_page_reporting && !p->balloon)
		serr(c, SECT_GUEST, "balloon-free-page-reporting", "only allowed with balloon = yes");
	if (p->vnc_password_file && p->vnc_password_generate)
		serr(c, SECT_DISPLAY, "password", "not allowed with password-file; give "
		     "one of them");
	for (size_t i = 0; !p->vnc && i < 4; i++)
		if (given(c, SECT_DISPLAY, vnc_keys[i]))
			serr(c, SECT_DISPLAY, vnc_keys[i], "only allowed with vnc = yes");
	if (p->restart_delay_ms > p->restart_max_delay_ms)
		serr(c, SECT_RESTART, given(c, SECT_RESTART, "max-delay") ? "max-delay" :
		     "delay", "delay (%llums) is above max-delay (%llums); the delay "
		     "grows from delay up to max-delay",
		     (unsigned long long)p->restart_delay_ms,
		     (unsigned long long)p->restart_max_delay_ms);
}

static void check_qemu(struct pctx *c)
{
	struct sv_profile *p = c->p;

	if (!p->sandbox && given(c, SECT_QEMU, "sandbox-spawn"))
		serr(c, SECT_QEMU, "sandbox-spawn", "only allowed with sandbox = yes");
}

void pc_check(struct pctx *c)
{
	check_guest(c);
	check_drives(c);
	check_nics(c);
	check_boot(c);
	check_ports(c);
	check_misc(c);
	check_qemu(c);
}
