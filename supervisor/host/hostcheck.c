/* The host check: see hostcheck.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host.h"
#include "hostcheck.h"
#include "identity.h"
#include "profile.h"

#define HC_MAX_ITEMS 24
#define HC_MAX_IDS 8
#define HC_MAX_BINS 8
#define DEFAULT_BINARY "/usr/bin/qemu-system-x86_64"

/* What the profiles in the profile dir ask of the host. */
struct hc_profiles {
	bool dir_ok;
	int count, bad;
	char bins[HC_MAX_BINS][PATH_MAX];
	int nbins;
	bool uefi;
	char uefi_code[PATH_MAX], uefi_tmpl[PATH_MAX], uefi_who[64];
	bool tap;                       /* a bridge or tap NIC */
	struct sv_identity ids[HC_MAX_IDS];     /* pinned [qemu] user identities */
	char id_who[HC_MAX_IDS][64];
	int nids;
};

struct hc {
	struct sv_hc_item *items;
	int n;
};

static void add(struct hc *h, const char *name, enum sv_hc_result r, const char *fix,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add(struct hc *h, const char *name, enum sv_hc_result r, const char *fix,
                const char *fmt, ...)
{
	struct sv_hc_item *it;
	va_list ap;

	if (h->n >= HC_MAX_ITEMS)
		return;
	it = &h->items[h->n++];
	snprintf(it->name, sizeof(it->name), "%s", name);
	it->result = r;
	va_start(ap, fmt);
	vsnprintf(it->detail, sizeof(it->detail), fmt, ap);
	va_end(ap);
	snprintf(it->fix, sizeof(it->fix), "%s", r == SV_HC_PASS || !fix ? "" : fix);
}

/* Append to the string in buf (size bytes), cutting what does not fit. */
static void cat(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t size, const char *fmt, ...)
{
	size_t l = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + l, size - l, fmt, ap);
	va_end(ap);
}

const char *sv_hc_result_name(enum sv_hc_result r)
{
	return r == SV_HC_PASS ? "PASS" : r == SV_HC_WARN ? "WARN" : "FAIL";
}

void sv_hostcheck_default_dirs(uid_t euid, char *pdir, char *rdir, size_t size)
{
	const char *cfg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	const char *run = getenv("XDG_RUNTIME_DIR");

	if (euid == 0) {
		snprintf(pdir, size, "/etc/qsup/profiles");
		snprintf(rdir, size, "/run/qsup");
		return;
	}
	if (cfg && *cfg)
		snprintf(pdir, size, "%s/qsup/profiles", cfg);
	else
		snprintf(pdir, size, "%s/.config/qsup/profiles", home ? home : "");
	if (run && *run)
		snprintf(rdir, size, "%s/qsup", run);
	else
		rdir[0] = '\0';
}

/* ------------------------------------------------------------ facts */

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* The first flag of /proc/cpuinfo among "vmx", "svm" (into flag), and
 * whether "hypervisor" is set; the vendor_id into vendor. */
static void cpu_flags(char *flag, size_t fsize, bool *hyper, char *vendor, size_t vsize)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[8192];

	flag[0] = vendor[0] = '\0';
	*hyper = false;
	while (f && fgets(line, sizeof(line), f)) {
		if (!vendor[0] && !strncmp(line, "vendor_id", 9) && strchr(line, ':'))
			snprintf(vendor, vsize, "%.*s", (int)strcspn(strchr(line, ':') + 2, "\n"),
			         strchr(line, ':') + 2);
		if (strncmp(line, "flags", 5))
			continue;
		char *save = NULL;
		for (char *w = strtok_r(strchr(line, ':') ? strchr(line, ':') + 1 : line,
		                        " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
			if (!flag[0] && (!strcmp(w, "vmx") || !strcmp(w, "svm")))
				snprintf(flag, fsize, "%s", w);
			if (!strcmp(w, "hypervisor"))
				*hyper = true;
		}
		break;
	}
	if (f)
		fclose(f);
}

/* The kvm_* modules loaded (kvm_intel, kvm_amd, kvm_pvm...), space-separated. */
static void kvm_modules(char *out, size_t size)
{
	DIR *d = opendir("/sys/module");
	struct dirent *e;

	out[0] = '\0';
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "kvm_", 4))
			cat(out, size, "%s%s", out[0] ? " " : "", e->d_name);
	if (d)
		closedir(d);
}

/* sv_host_kvm_probe() as uid/gid, in a child that drops to them as qsupd
 * does for QEMU (no supplementary groups, no_new_privs). The child's
 * message comes back through a pipe. Returns its result. */
static int probe_as(uid_t uid, gid_t gid, struct sv_error *err)
{
	int p[2], status = 0;
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		return sv_error_set(err, -errno, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return sv_error_set(err, -errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		struct sv_error e = { 0 };
		int r;

		close(p[0]);
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0 ||
		    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			r = sv_error_set(&e, -errno, "cannot become uid %u gid %u: %s",
			                 (unsigned)uid, (unsigned)gid, strerror(errno));
		else
			r = sv_host_kvm_probe(NULL, &e);
		if (write(p[1], e.msg, strlen(e.msg)) < 0)
			_exit(120);
		_exit(r < 0 ? (-r) & 0x7f : 0);
	}
	close(p[1]);
	memset(err->msg, 0, sizeof(err->msg));
	n = read(p[0], err->msg, sizeof(err->msg) - 1);
	close(p[0]);
	err->msg[n > 0 ? n : 0] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status))
		return sv_error_set(err, -EIO, "the probe as uid %u died", (unsigned)uid);
	err->code = -WEXITSTATUS(status);
	return err->code;
}

/* `bin --version`'s first line into out. Returns 0, or -1 (why in out). */
static int qemu_version(const char *bin, char *out, size_t size)
{
	int p[2], status = 0, devnull;
	char buf[1024];
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (access(bin, X_OK) < 0) {
		snprintf(out, size, "%s: %s", bin, strerror(errno));
		return -1;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(out, size, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		char *argv[] = { (char *)bin, "--version", NULL };
		char *env[] = { "LC_ALL=C", "PATH=/usr/local/bin:/usr/bin:/bin", NULL };

		devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(devnull, 0);
		dup2(p[1], 1);
		dup2(devnull, 2);
		execve(bin, argv, env);
		_exit(127);
	}
	close(p[1]);
	while (pid > 0 && len < sizeof(buf) - 1 &&
	       ((n = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0 ||
	        (n < 0 && errno == EINTR)))
		len += n > 0 ? (size_t)n : 0;
	buf[len] = '\0';
	close(p[0]);
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !len) {
		snprintf(out, size, "%s --version failed", bin);
		return -1;
	}
	snprintf(out, size, "%.*s", (int)strcspn(buf, "\n"), buf);
	return 0;
}

static int ini_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 4 && !strcmp(d->d_name + n - 4, ".ini");
}

static void note_profile(struct hc_profiles *ps, const struct sv_profile *p,
                         const struct sv_id_config *idc)
{
	struct sv_identity id;
	struct sv_error err = { 0 };
	int i;

	for (i = 0; i < ps->nbins && strcmp(ps->bins[i], p->binary); i++)
		;
	if (i == ps->nbins && ps->nbins < HC_MAX_BINS)
		snprintf(ps->bins[ps->nbins++], PATH_MAX, "%s", p->binary);
	if (p->firmware == SV_FIRMWARE_UEFI && !ps->uefi) {
		ps->uefi = true;
		snprintf(ps->uefi_code, PATH_MAX, "%s", p->uefi_code ? p->uefi_code : "");
		snprintf(ps->uefi_tmpl, PATH_MAX, "%s",
		         p->uefi_vars_template ? p->uefi_vars_template : "");
		snprintf(ps->uefi_who, sizeof(ps->uefi_who), "%s", p->name);
	}
	for (size_t j = 0; j < p->nnics; j++)
		ps->tap |= p->nics[j].type != SV_NIC_USER;
	if (!idc->root || !p->user || ps->nids >= HC_MAX_IDS ||
	    sv_identity_resolve(p, p->name, idc, &id, &err) < 0 || !id.drop)
		return;
	for (i = 0; i < ps->nids; i++)
		if (ps->ids[i].uid == id.uid && ps->ids[i].gid == id.gid)
			return;
	ps->ids[ps->nids] = id;
	snprintf(ps->id_who[ps->nids++], 64, "%s", p->name);
}

static void read_profiles(const char *dir, struct hc_profiles *ps,
                          const struct sv_id_config *idc)
{
	struct dirent **ents;
	int n = dir[0] ? scandir(dir, &ents, ini_filter, alphasort) : -1;

	ps->dir_ok = n >= 0;
	for (int i = 0; i < n; i++) {
		struct sv_strv errs = { 0 };
		struct sv_profile *p = NULL;
		char *path = NULL;

		if (asprintf(&path, "%s/%s", dir, ents[i]->d_name) >= 0) {
			ps->count++;
			if (sv_profile_load(path, &p, &errs) < 0)
				ps->bad++;
			else
				note_profile(ps, p, idc);
		}
		sv_profile_free(p);
		sv_strv_free(&errs);
		free(path);
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
}

/* ------------------------------------------------------------ checks */

static void check_kvm(struct hc *h, const struct sv_id_config *idc,
                      const struct hc_profiles *ps)
{
	char flag[8], vendor[64], mods[256];
	bool hyper;
	struct stat st;
	struct sv_error kerr = { 0 };
	int kvm = sv_host_kvm_probe(NULL, &kerr);
	bool dev = stat(SV_KVM_DEVICE, &st) == 0;
	const char *modfix;

	cpu_flags(flag, sizeof(flag), &hyper, vendor, sizeof(vendor));
	modfix = strstr(vendor, "AMD") ? "modprobe kvm_amd" : "modprobe kvm_intel";
	kvm_modules(mods, sizeof(mods));   /* before cpu-virt, which names them */
	if (flag[0])
		add(h, "cpu-virt", SV_HC_PASS, NULL, "%s (%s)%s", flag,
		    !strcmp(flag, "vmx") ? "Intel VT-x" : "AMD-V",
		    hyper ? "; running under a hypervisor (nested KVM)" : "");
	else if (kvm == 0)
		add(h, "cpu-virt", SV_HC_PASS, NULL, "no vmx/svm flag, but KVM creates VMs "
		    "(nested or paravirtual KVM)");
	else if (mods[0])
		add(h, "cpu-virt", SV_HC_WARN, "see kvm-device and kvm-create-vm", "no vmx/svm "
		    "flag, but %s is loaded: KVM may work once " SV_KVM_DEVICE " does", mods);
	else
		add(h, "cpu-virt", SV_HC_FAIL, hyper ? "enable nested virtualization in the "
		    "host's hypervisor; meanwhile accel = kvm:tcg boots under TCG (slow)" :
		    "enable VT-x or AMD-V in the firmware setup; meanwhile accel = kvm:tcg "
		    "boots under TCG (slow)",
		    "no vmx or svm flag in /proc/cpuinfo%s, and KVM cannot create VMs",
		    hyper ? " (a virtual machine without nested virtualization)" : "");

	if (exists("/sys/module/kvm"))
		add(h, "kvm-module", SV_HC_PASS, NULL, "kvm is loaded");
	else
		add(h, "kvm-module", kvm == 0 ? SV_HC_PASS : SV_HC_FAIL, "modprobe kvm",
		    kvm == 0 ? "kvm built into the kernel" : "the kvm module is not loaded");
	if (strstr(mods, "kvm_intel") || strstr(mods, "kvm_amd"))
		add(h, "kvm-vendor-module", SV_HC_PASS, NULL, "%s is loaded", mods);
	else if (mods[0])
		add(h, "kvm-vendor-module", SV_HC_PASS, NULL, "%s is loaded (no kvm_intel or "
		    "kvm_amd: paravirtual or another vendor's KVM)", mods);
	else
		add(h, "kvm-vendor-module", kvm == 0 ? SV_HC_PASS : SV_HC_FAIL, modfix,
		    kvm == 0 ? "no kvm_intel or kvm_amd module, but KVM creates VMs" :
		    "neither kvm_intel nor kvm_amd is loaded");

	if (!dev)
		add(h, "kvm-device", SV_HC_FAIL, "load the kvm modules (modprobe kvm_intel or "
		    "kvm_amd); udev then makes /dev/kvm", SV_KVM_DEVICE " is absent");
	else if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(10, 232))
		add(h, "kvm-device", SV_HC_FAIL, "remove what is mounted or copied over "
		    SV_KVM_DEVICE " (it must be the character device 10:232)",
		    SV_KVM_DEVICE " is not the KVM device (%s %u:%u)",
		    S_ISCHR(st.st_mode) ? "char" : "not a character device",
		    major(st.st_rdev), minor(st.st_rdev));
	else
		add(h, "kvm-device", SV_HC_PASS, NULL, SV_KVM_DEVICE " (char %u:%u, mode %04o, "
		    "group %u)", major(st.st_rdev), minor(st.st_rdev),
		    (unsigned)(st.st_mode & 07777), (unsigned)st.st_gid);

	if (kvm == 0)
		add(h, "kvm-create-vm", SV_HC_PASS, NULL, "KVM_CREATE_VM works as uid %u "
		    "(qsupd's user)", (unsigned)geteuid());
	else
		add(h, "kvm-create-vm", SV_HC_FAIL, kerr.code == -EACCES ?
		    "add this user to the kvm group (usermod -aG kvm USER), then log in again" :
		    "load the kvm modules and check dmesg; meanwhile accel = kvm:tcg boots "
		    "under TCG", "%s", kerr.msg);

	/* QEMU's own user: under root, the per-guest uids (kvm group), and any
	 * [qemu] user a profile pins; else qsupd's own user, probed above. */
	if (!idc->root) {
		add(h, "kvm-qemu-user", kvm == 0 ? SV_HC_PASS : SV_HC_FAIL,
		    "see kvm-create-vm", "QEMU runs as qsupd's user (uid %u)%s",
		    (unsigned)geteuid(), kvm == 0 ? ", which can create VMs" : ": it cannot");
		return;
	}
	struct sv_identity ids[HC_MAX_IDS + 1];
	const char *who[HC_MAX_IDS + 1];
	int nid = 0, bad = 0, denied = 0;
	char detail[400] = "", fix[300] = "";

	ids[nid].uid = idc->first;
	ids[nid].gid = idc->have_kvm ? idc->kvm_gid : idc->first;
	who[nid++] = "the per-guest uids";
	for (int i = 0; i < ps->nids; i++) {
		ids[nid] = ps->ids[i];
		who[nid++] = ps->id_who[i];
	}
	for (int i = 0; i < nid; i++) {
		struct sv_error e = { 0 };
		int r = probe_as(ids[i].uid, ids[i].gid, &e);

		if (r == 0 && bad)
			continue;   /* once one fails, the table shows the failures */
		if (r < 0 && !bad++)
			detail[0] = '\0';
		denied += r == -EACCES || r == -EPERM;
		cat(detail, sizeof(detail), "%s%s (uid %u, gid %u)%s%s", detail[0] ? "; " : "",
		    who[i], (unsigned)ids[i].uid, (unsigned)ids[i].gid,
		    r == 0 ? " can create VMs" : ": ", r == 0 ? "" : e.msg);
	}
	if (bad && !denied)
		snprintf(fix, sizeof(fix), "see kvm-device and kvm-create-vm: KVM itself fails");
	else if (!idc->have_kvm)
		snprintf(fix, sizeof(fix), "groupadd --system kvm && chgrp kvm " SV_KVM_DEVICE
		         " && chmod 0660 " SV_KVM_DEVICE " (udev's rule for Debian's qemu "
		         "packages does this)");
	else
		snprintf(fix, sizeof(fix), "chgrp kvm " SV_KVM_DEVICE " && chmod 0660 "
		         SV_KVM_DEVICE " (QEMU runs with group kvm; udev's rule in Debian's "
		         "udev package does this at boot)");
	if (!idc->have_kvm && !bad)
		add(h, "kvm-qemu-user", SV_HC_WARN, fix, "%s; but there is no kvm group, so "
		    "per-guest QEMUs get a group of their own", detail);
	else
		add(h, "kvm-qemu-user", bad ? SV_HC_FAIL : SV_HC_PASS, fix, "%s", detail);
}

static void check_qemu(struct hc *h, const struct hc_profiles *ps)
{
	char detail[400] = "", v[200];
	int nb = ps->nbins ? ps->nbins : 1, bad = 0;

	for (int i = 0; i < nb; i++) {
		const char *bin = ps->nbins ? ps->bins[i] : DEFAULT_BINARY;
		int r = qemu_version(bin, v, sizeof(v));

		bad += r < 0;
		cat(detail, sizeof(detail), "%s%s%s%s", detail[0] ? "; " : "", r == 0 ? bin : "",
		    r == 0 ? ": " : "", v);
	}
	add(h, "qemu", bad ? SV_HC_FAIL : SV_HC_PASS, "apt-get install qemu-system-x86 "
	    "(or fix [qemu] binary in the profile)", "%s", detail);
}

static void check_ovmf(struct hc *h, const struct hc_profiles *ps)
{
	const char *code = ps->uefi_code, *tmpl = ps->uefi_tmpl;

	if (!ps->uefi) {
		add(h, "ovmf", SV_HC_PASS, NULL, "no profile uses firmware = uefi (OVMF "
		    "%sinstalled)", exists("/usr/share/OVMF/OVMF_CODE_4M.fd") ? "" : "not ");
		return;
	}
	if (access(code, R_OK) < 0)
		add(h, "ovmf", SV_HC_FAIL, "apt-get install ovmf (or fix uefi-code in the "
		    "profile)", "%s uses firmware = uefi, but %s: %s", ps->uefi_who, code,
		    strerror(errno));
	else if (tmpl[0] && access(tmpl, R_OK) < 0)
		add(h, "ovmf", SV_HC_FAIL, "apt-get install ovmf (or fix uefi-vars-template "
		    "in the profile)", "%s uses firmware = uefi, but %s: %s", ps->uefi_who, tmpl,
		    strerror(errno));
	else
		add(h, "ovmf", SV_HC_PASS, NULL, "%s (for %s)", code, ps->uefi_who);
}

/* The deepest existing ancestor of path, into out. */
static void existing_parent(const char *path, char *out, size_t size)
{
	char *s;

	snprintf(out, size, "%s", path);
	while ((s = strrchr(out, '/')) && !exists(out)) {
		if (s == out) {
			out[1] = '\0';
			return;
		}
		*s = '\0';
	}
}

static void check_run_dir(struct hc *h, const char *dir)
{
	struct stat st;
	char parent[PATH_MAX];

	if (!dir[0]) {
		add(h, "run-dir", SV_HC_FAIL, "log in through a session that sets "
		    "XDG_RUNTIME_DIR, or give -r DIR", "XDG_RUNTIME_DIR is not set, and no -r "
		    "DIR was given");
		return;
	}
	if (stat(dir, &st) < 0) {
		existing_parent(dir, parent, sizeof(parent));
		if (access(parent, W_OK) == 0)
			add(h, "run-dir", SV_HC_PASS, NULL, "%s is absent; qsupd makes it at start",
			    dir);
		else
			add(h, "run-dir", SV_HC_FAIL, "run qsupd as root, or give it a run dir "
			    "it can make (-r DIR)", "%s is absent and %s is not writable: %s", dir,
			    parent, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode))
		add(h, "run-dir", SV_HC_FAIL, "remove it, or give -r DIR", "%s is not a directory",
		    dir);
	else if (access(dir, W_OK | X_OK) < 0)
		add(h, "run-dir", SV_HC_FAIL, "chown it to qsupd's user, or give -r DIR",
		    "%s is not writable by uid %u", dir, (unsigned)geteuid());
	else if (st.st_uid != geteuid())
		add(h, "run-dir", SV_HC_WARN, "chown it to qsupd's user", "%s belongs to uid %u, "
		    "not to qsupd's user (uid %u)", dir, (unsigned)st.st_uid, (unsigned)geteuid());
	else if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
		add(h, "run-dir", SV_HC_WARN, "chmod o-w it", "%s is writable by every user "
		    "(mode %04o)", dir, (unsigned)(st.st_mode & 07777));
	else
		add(h, "run-dir", SV_HC_PASS, NULL, "%s (mode %04o, owner uid %u, writable)", dir,
		    (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
}

static void check_profile_dir(struct hc *h, const char *dir, const struct hc_profiles *ps)
{
	struct stat st;
	char fix[PATH_MAX + 64];

	snprintf(fix, sizeof(fix), "mkdir -p %s and write NAME.ini there (qsup.ini(5))", dir);
	if (stat(dir, &st) < 0) {
		add(h, "profile-dir", SV_HC_WARN, fix, "%s: %s (qsupd starts with no guests)", dir,
		    strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode) || !ps->dir_ok) {
		add(h, "profile-dir", SV_HC_FAIL, "give -d DIR, a directory qsupd can read",
		    "%s is not a readable directory", dir);
		return;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		add(h, "profile-dir", SV_HC_WARN, "chown it to qsupd's user", "%s belongs to "
		    "uid %u: that user decides what QEMU runs", dir, (unsigned)st.st_uid);
		return;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(fix, sizeof(fix), "chmod go-w %s", dir);
		add(h, "profile-dir", SV_HC_WARN, fix, "%s is writable by %s (mode %04o): whoever "
		    "writes a profile decides what QEMU runs, and as whom", dir,
		    (st.st_mode & S_IWOTH) ? "every user" : "its group",
		    (unsigned)(st.st_mode & 07777));
		return;
	}
	snprintf(fix, sizeof(fix), "qsupd --check -d %s shows each error as file:line", dir);
	if (ps->bad)
		add(h, "profile-dir", SV_HC_WARN, fix, "%s: %d profile%s, %d with errors", dir,
		    ps->count, ps->count == 1 ? "" : "s", ps->bad);
	else
		add(h, "profile-dir", SV_HC_PASS, NULL, "%s: %d profile%s", dir, ps->count,
		    ps->count == 1 ? "" : "s");
}

static void read_line(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "re");

	out[0] = '\0';
	if (f && fgets(out, (int)size, f))
		out[strcspn(out, "\n")] = '\0';
	if (f)
		fclose(f);
}

static void check_cgroup(struct hc *h)
{
	static const char *const lost = "per-guest CPU, memory and I/O limits through "
	                                "cgroup v2 controllers are not available (qsup "
	                                "runs without them)";
	static const char *const fix = "boot with systemd.unified_cgroup_hierarchy=1 (Debian "
	                               "12's default), or mount cgroup2 on /sys/fs/cgroup";
	char c[256];

	if (exists("/sys/fs/cgroup/cgroup.controllers")) {
		read_line("/sys/fs/cgroup/cgroup.controllers", c, sizeof(c));
		if (c[0])
			add(h, "cgroup", SV_HC_PASS, NULL, "cgroup v2, controllers: %s", c);
		else
			add(h, "cgroup", SV_HC_WARN, "enable the controllers in the parent's "
			    "cgroup.subtree_control", "cgroup v2 without controllers: %s", lost);
	} else if (exists("/sys/fs/cgroup/unified/cgroup.controllers")) {
		read_line("/sys/fs/cgroup/unified/cgroup.controllers", c, sizeof(c));
		add(h, "cgroup", SV_HC_WARN, fix, "cgroup v1 (hybrid: v2 at /sys/fs/cgroup/unified "
		    "with controllers: %s): %s", c[0] ? c : "none", lost);
	} else {
		add(h, "cgroup", SV_HC_WARN, fix, "no cgroup v2 (v1 or none): %s", lost);
	}
}

/* A device that opens read-write: 0, or -errno. */
static int dev_opens(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static void check_net(struct hc *h, const struct hc_profiles *ps)
{
	int r = dev_opens("/dev/vhost-net");

	if (r == 0)
		add(h, "vhost-net", SV_HC_PASS, NULL, "/dev/vhost-net opens");
	else
		add(h, "vhost-net", SV_HC_WARN, r == -ENOENT ? "modprobe vhost_net" :
		    "chmod 0660 /dev/vhost-net for qsupd's user", "/dev/vhost-net: %s: "
		    "virtio-net NICs move packets in QEMU's own thread (slower)", strerror(-r));
	r = dev_opens("/dev/net/tun");
	if (r == 0)
		add(h, "tun", SV_HC_PASS, NULL, "/dev/net/tun opens (bridge and tap NICs)");
	else
		add(h, "tun", ps->tap ? SV_HC_FAIL : SV_HC_WARN, r == -ENOENT ? "modprobe tun" :
		    "chmod 0666 /dev/net/tun", "/dev/net/tun: %s: bridge and tap NICs cannot "
		    "work%s", strerror(-r), ps->tap ? ", and a profile has one" : "");
}

static void check_iommu(struct hc *h)
{
	DIR *d = opendir("/sys/kernel/iommu_groups");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	if (n)
		add(h, "iommu", SV_HC_PASS, NULL, "%d IOMMU group%s", n, n == 1 ? "" : "s");
	else
		add(h, "iommu", SV_HC_WARN, "enable VT-d or AMD-Vi in the firmware setup and "
		    "boot with intel_iommu=on (Intel)", "no IOMMU groups: PCI device "
		    "passthrough (VFIO) is not possible (qsup does not use it today)");
}

int sv_hostcheck_run(const struct sv_hc_opts *o, struct sv_hc_item **items)
{
	struct hc h = { .items = calloc(HC_MAX_ITEMS, sizeof(struct sv_hc_item)) };
	struct hc_profiles *ps = calloc(1, sizeof(*ps));
	char pdir[PATH_MAX], rdir[PATH_MAX];
	struct sv_id_config idc;

	if (!h.items || !ps) {
		free(h.items);
		free(ps);
		return -ENOMEM;
	}
	sv_hostcheck_default_dirs(geteuid(), pdir, rdir, sizeof(pdir));
	if (o && o->profile_dir)
		snprintf(pdir, sizeof(pdir), "%s", o->profile_dir);
	if (o && o->run_dir)
		snprintf(rdir, sizeof(rdir), "%s", o->run_dir);
	sv_id_config_init(&idc, geteuid(), 0, 0);
	read_profiles(pdir, ps, &idc);
	check_kvm(&h, &idc, ps);
	check_qemu(&h, ps);
	check_ovmf(&h, ps);
	check_run_dir(&h, rdir);
	check_profile_dir(&h, pdir, ps);
	check_cgroup(&h);
	check_net(&h, ps);
	check_iommu(&h);
	free(ps);
	*items = h.items;
	return h.n;
}
