/*
 * Installing a guest from an ISO, for real: the test builds bootable ISO
 * images with xorriso (isolinux, the host's kernel and the tiny guest's
 * initramfs), the tiny guest boots from one under TCG (its serial banner
 * says so), and the cdrom verb ejects it and inserts another; VNC with a
 * display chosen at start and a password (generated, or from a file),
 * checked with QEMU's own query-vnc; a screendump shows a screen with
 * something on it. The ISO tests skip when xorriso or isolinux is missing.
 *
 * A tray locked by the guest's OS: the tiny guest carries no CD-ROM driver,
 * so the ISO brings a second initramfs with the host kernel's ahci, sr_mod
 * and isofs modules (isolinux loads both); the test loads them from the
 * guest's shell and mounts the disc, and Linux locks the tray while it is
 * mounted. That part is skipped when modprobe cannot list the modules.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define str t_str
#define FW_PROFILE "[guest]\nmemory = 64M\naccel = kvm:tcg\n[shutdown]\ntimeout = 1s\n"

static const char *const isolinux_bin = "/usr/lib/ISOLINUX/isolinux.bin";
static const char *const ldlinux_c32 = "/usr/lib/syslinux/modules/bios/ldlinux.c32";

/* The kernel the tiny guest was built from (tests/guest/build.sh): a
 * bzImage, which isolinux boots (the guest's vmlinux is for -kernel). */
static const char *host_kernel(void)
{
	static char path[512];
	const char *k = getenv("QSUP_GUEST_KERNEL");
	if (k && *k)
		return k;
	DIR *d = opendir("/boot");
	struct dirent *e;
	path[0] = '\0';
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "vmlinuz-", 8) &&
		    (!path[0] || strverscmp(e->d_name, path + 6) > 0))
			snprintf(path, sizeof(path), "/boot/%s", e->d_name);
	if (d)
		closedir(d);
	return path[0] ? path : NULL;
}

static bool have_iso_tools(void)
{
	return access("/usr/bin/xorriso", X_OK) == 0 && access(isolinux_bin, R_OK) == 0 &&
	       access(ldlinux_c32, R_OK) == 0 && host_kernel() != NULL;
}

static void copy_file(const char *from, const char *to)
{
	const char *argv[] = { "/bin/cp", from, to, NULL };
	char out[1024];
	if (t_run_capture(argv, out, sizeof(out), 30000) != 0)
		fail_msg("cp %s %s: %s", from, to, out);
}

/* The kernel's version, from its file name (vmlinuz-VERSION). */
static const char *kernel_version(void)
{
	const char *k = host_kernel(), *v = k ? strstr(k, "vmlinuz-") : NULL;
	return v ? v + 8 : NULL;
}

/* DIR/extra.cpio: the modules a CD-ROM needs (ahci, sr_mod, isofs and what
 * they depend on, in load order, listed in lib/qsup-cdrom-modules), as a
 * second initramfs. Returns false when they cannot be found. */
static bool make_cdrom_modules(const char *root)
{
	const char *kver = kernel_version();
	static char out[16384];
	if (!kver || access("/sbin/modprobe", X_OK) != 0 || access("/usr/bin/cpio", X_OK) != 0)
		return false;
	const char *argv[] = { "/sbin/modprobe", "--show-depends", "-S", kver, "-a", "ahci",
	                       "sr_mod", "isofs", NULL };
	if (t_run_capture(argv, out, sizeof(out), 30000) != 0)
		return false;
	char tree[700], list[800], path[1600], dir[1600];
	snprintf(tree, sizeof(tree), "%s-mods", root);
	snprintf(list, sizeof(list), "%s/lib", tree);
	const char *mk[] = { "/bin/mkdir", "-p", list, NULL };
	char junk[512];
	if (t_run_capture(mk, junk, sizeof(junk), 10000) != 0)
		return false;
	snprintf(list, sizeof(list), "%s/lib/qsup-cdrom-modules", tree);
	FILE *l = fopen(list, "w");
	if (!l)
		return false;
	int n = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char mod[600];
		if (sscanf(line, "insmod %599s", mod) != 1 || strstr(mod, ".ko.")) {
			fclose(l);
			return false;   /* builtin lines need nothing; compressed: not here */
		}
		snprintf(path, sizeof(path), "%s%s", tree, mod);
		snprintf(dir, sizeof(dir), "%s", path);
		*strrchr(dir, '/') = '\0';
		const char *md[] = { "/bin/mkdir", "-p", dir, NULL };
		if (t_run_capture(md, junk, sizeof(junk), 10000) != 0)
			break;
		copy_file(mod, path);
		fprintf(l, "%s\n", mod);
		n++;
	}
	fclose(l);
	char cmd[2000];
	snprintf(cmd, sizeof(cmd), "cd '%s' && find . | cpio -o -H newc --quiet > '%s/extra.cpio'",
	         tree, root);
	const char *sh[] = { "/bin/sh", "-c", cmd, NULL };
	return n > 0 && t_run_capture(sh, junk, sizeof(junk), 30000) == 0;
}

/* An ISO image at iso (volume label label) that boots the tiny guest with
 * isolinux, its messages on the serial port too; with the CD-ROM modules
 * when *modules (set false when they could not be added). */
static void make_iso(const char *dir, const char *iso, const char *label, bool *modules)
{
	char root[600], sub[700], path[800], cfg[1400], out[8192];
	snprintf(root, sizeof(root), "%s/isoroot-%s", dir, label);
	snprintf(sub, sizeof(sub), "%s/isolinux", root);
	assert_int_equal(mkdir(root, 0755), 0);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(path, sizeof(path), "%s/isolinux.bin", sub);
	copy_file(isolinux_bin, path);
	snprintf(path, sizeof(path), "%s/ldlinux.c32", sub);
	copy_file(ldlinux_c32, path);
	snprintf(path, sizeof(path), "%s/vmlinuz", root);
	copy_file(host_kernel(), path);
	snprintf(cfg, sizeof(cfg), "%s/initramfs.cpio.gz", t_guestdir());
	snprintf(path, sizeof(path), "%s/initrd.gz", root);
	copy_file(cfg, path);
	snprintf(path, sizeof(path), "%s/cmdline", t_guestdir());
	const char *cmdline = t_read_line(path);
	if (modules && *modules)
		*modules = make_cdrom_modules(root);
	snprintf(cfg, sizeof(cfg), "SERIAL 0 115200\nDEFAULT qsup\nPROMPT 0\nTIMEOUT 0\n"
	         "LABEL qsup\n  KERNEL /vmlinuz\n  INITRD /initrd.gz%s\n"
	         "  APPEND %s\n", modules && *modules ? ",/extra.cpio" : "",
	         cmdline ? cmdline : "console=ttyS0");
	snprintf(path, sizeof(path), "%s/isolinux.cfg", sub);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(cfg, f);
	fclose(f);
	const char *argv[] = { "/usr/bin/xorriso", "-as", "mkisofs", "-quiet", "-o", iso,
	                       "-V", label, "-b", "isolinux/isolinux.bin", "-c",
	                       "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4",
	                       "-boot-info-table", "-J", "-R", root, NULL };
	if (t_run_capture(argv, out, sizeof(out), 120000) != 0)
		fail_msg("xorriso: %s", out);
	chmod(iso, 0644);
}

/* qmp passthrough: QEMU's "return" (a new reference); an error fails. */
static json_t *qmp(struct t_fx *x, const char *name, const char *cmd, json_t *args)
{
	json_t *req = json_pack("{s:s, s:s}", "name", name, "command", cmd);
	if (args)
		json_object_set_new(req, "arguments", args);
	json_t *r = t_ctl_call(&x->c, "qmp", req, 20000);
	json_t *ret = json_incref(json_object_get(r, "return"));
	if (!ret)
		fail_msg("%s: %s", cmd, str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	return ret;
}

/* The query-block entry of device id (a new reference). */
static json_t *block(struct t_fx *x, const char *name, const char *id)
{
	json_t *l = qmp(x, name, "query-block", NULL), *b, *found = NULL;
	size_t i;
	char qdev[128];
	snprintf(qdev, sizeof(qdev), "/machine/peripheral/%s/", id);
	json_array_foreach(l, i, b) {
		const char *q = str(b, "qdev");
		if (!strcmp(q, id) || !strncmp(q, qdev, strlen(qdev)))
			found = json_incref(b);
	}
	json_decref(l);
	assert_non_null(found);
	return found;
}

/* The cdrom verb: its whole reply. */
static json_t *cdrom(struct t_fx *x, const char *name, const char *id, const char *action,
                     const char *file, bool force)
{
	json_t *a = json_pack("{s:s, s:s, s:s}", "name", name, "id", id, "action", action);
	if (file)
		json_object_set_new(a, "file", json_string(file));
	if (force)
		json_object_set_new(a, "force", json_true());
	return t_ctl_call(&x->c, "cdrom", a, 30000);
}

static void cdrom_fails(struct t_fx *x, const char *name, const char *id, const char *action,
                        const char *file, const char *cls, const char *text)
{
	json_t *r = cdrom(x, name, id, action, file, false);
	json_t *e = json_object_get(r, "error");
	if (!e)
		fail_msg("cdrom %s %s %s succeeded", name, id, action);
	assert_string_equal(str(e, "class"), cls);
	if (!strstr(str(e, "desc"), text))
		fail_msg("cdrom %s %s: \"%s\" does not say \"%s\"", id, action, str(e, "desc"), text);
	json_decref(r);
}

static const char *medium(json_t *st, const char *id)
{
	return str(json_object_get(st, "media"), id);
}

/* Run qsupctl with args (NULL-terminated, at most 6); its output (static).
 * Asserts its exit status. */
static const char *ctl_run(struct t_fx *x, int status, const char *const *args)
{
	static char out[8192];
	const char *argv[10] = { t_qsupctl(), "-s", x->d.sock };
	for (int i = 0; args[i] && i < 6; i++)
		argv[3 + i] = args[i];
	int rc = t_run_capture(argv, out, sizeof(out), 20000);
	if (rc != status)
		fail_msg("qsupctl %s %s: exit %d, not %d: %s", args[0], args[1] ? args[1] : "",
		         rc, status, out);
	return out;
}
#define ctl(x, status, ...) ctl_run((x), (status), (const char *const[]){ __VA_ARGS__, NULL })

/* The ISO flow, the way an installer goes: boot from the disc, eject it,
 * insert another; a disk created by size = in directories made for it; VNC
 * on a free display with a generated password; a qsupd restart reads the
 * medium back from QEMU. */
static void test_iso_install_flow(void **state)
{
	struct t_fx *x = *state;
	if (!have_iso_tools()) {
		printf("# skip: needs xorriso, isolinux, syslinux-common and /boot/vmlinuz-*\n");
		skip();
	}
	char one[600], two[600], disk[700], profile[3000], path[900];
	snprintf(one, sizeof(one), "%s/one.iso", x->d.dir);
	snprintf(two, sizeof(two), "%s/two.iso", x->d.dir);
	snprintf(disk, sizeof(disk), "%s/store/vm/root.img", x->d.dir);
	bool modules = true;
	make_iso(x->d.dir, one, "ONE", &modules);
	make_iso(x->d.dir, two, "TWO", NULL);
	chmod(x->d.dir, 0755);
	snprintf(profile, sizeof(profile), "[guest]\nmemory = 256M\naccel = tcg\n"
	         "boot-order = cd root\n[cdrom.cd]\nfile = %s\n[disk.root]\nfile = %s\n"
	         "format = raw\nsize = 8M\n[display]\nvnc = yes\nvnc-display = auto\n"
	         "password = generate\n[serial]\nlog = %s/serial.log\n[shutdown]\ntimeout = 2s\n",
	         one, disk, x->d.dir);
	t_daemon_profile(&x->d, "inst", profile);
	t_fx_up(x, (const char *const[]){ "--log-level", "debug", NULL });

	cdrom_fails(x, "inst", "cd", "eject", NULL, "InvalidState", "only while it runs");
	json_t *st = t_fx_must(x, "start", "inst", 60000);
	/* The disk was made, with the directories above it (0700). */
	json_t *created = json_object_get(st, "created");
	snprintf(path, sizeof(path), "%s/store", x->d.dir);
	assert_string_equal(json_string_value(json_array_get(created, 0)), path);
	snprintf(path, sizeof(path), "%s/store/vm", x->d.dir);
	assert_string_equal(json_string_value(json_array_get(created, 1)), path);
	assert_string_equal(json_string_value(json_array_get(created, 2)), disk);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	assert_int_equal(stat(disk, &sb), 0);
	assert_true(t_fx_log_has(x, "created the directory"));
	assert_string_equal(medium(st, "cd"), one);
	const char *uri = str(st, "display");
	assert_int_equal(strncmp(uri, "vnc://127.0.0.1:59", 18), 0);
	assert_string_equal(str(st, "display_auth"), "generated");
	char display[64];
	snprintf(display, sizeof(display), "%s", uri);
	json_decref(st);

	/* It boots from the ISO: isolinux's line (in the serial log: it comes
	 * before anyone is at the console), then the guest's banner. */
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen = 0;
	assert_int_equal(t_ctl_console(&x->c, "inst", &loop, &ser), 0);
	if (t_serial_wait(&ser, "QSUP-GUEST-READY", &seen, 180000) < 0)
		fail_msg("no ready marker on the console:\n%s", ser.buf ? ser.buf : "");
	snprintf(path, sizeof(path), "%s/serial.log", x->d.dir);
	if (!strstr(t_file_tail(path), "ISOLINUX"))
		fail_msg("isolinux did not boot from one.iso:\n%s", t_file_tail(path));

	/* VNC: QEMU's own word, and the password qsupd generated (0600). */
	json_t *vnc = qmp(x, "inst", "query-vnc", NULL);
	assert_true(json_is_true(json_object_get(vnc, "enabled")));
	assert_string_equal(str(vnc, "auth"), "vnc");
	assert_string_equal(str(vnc, "host"), "127.0.0.1");
	assert_int_equal(atoi(str(vnc, "service")), atoi(display + 16));
	json_decref(vnc);
	snprintf(path, sizeof(path), "%s/inst/vnc-password", x->d.run);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	const char *pw = t_read_line(path);
	assert_non_null(pw);
	assert_int_equal(strlen(pw), 8);
	char password[16];
	snprintf(password, sizeof(password), "%s", pw);
	char expect[128];
	snprintf(expect, sizeof(expect), "%s\n", display);
	assert_string_equal(ctl(x, 0, "display", "inst"), expect);
	snprintf(expect, sizeof(expect), "%s\n%s\n", display, password);
	assert_string_equal(ctl(x, 0, "display", "--password", "inst"), expect);
	json_t *j = json_loads(ctl(x, 0, "--json", "display", "inst"), 0, NULL);
	assert_string_equal(str(j, "display"), display);
	assert_null(json_object_get(j, "password"));
	json_decref(j);
	assert_false(t_fx_log_has(x, password));   /* not even at debug level */

	/* A screendump (QEMU writes it into its own dir, fd 6) is not blank. */
	json_decref(qmp(x, "inst", "screendump", json_pack("{s:s}", "filename",
	                                                   "/proc/self/fd/6/shot.ppm")));
	snprintf(path, sizeof(path), "%s/inst/qemu/shot.ppm", x->d.run);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	int w, h, max;
	assert_int_equal(fscanf(f, "P6 %d %d %d", &w, &h, &max), 3);
	fgetc(f);
	assert_true(w > 0 && h > 0);
	unsigned char first[3], px[3];
	size_t distinct = 1;
	assert_int_equal(fread(first, 1, 3, f), 3);
	while (fread(px, 1, 3, f) == 3)
		distinct += memcmp(px, first, 3) != 0;
	fclose(f);
	printf("# screendump %dx%d: %zu pixels differ from the first\n", w, h, distinct - 1);
	assert_true(distinct > 1);

	/* The guest's OS locks the tray while the disc is mounted: eject is
	 * refused, the guest holds it; --force takes it out anyway. */
	json_t *b, *r;
	if (!modules) {
		printf("# skip: the locked tray (modprobe cannot list the CD-ROM modules)\n");
	} else {
		t_serial_write(&ser, "sh");
		t_serial_write(&ser, "for m in $(cat /lib/qsup-cdrom-modules); do insmod $m; done "
		               "2>/dev/null; for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/sr0 ] && "
		               "break; sleep 1; done; mkdir -p /mnt; mount -t iso9660 -o ro "
		               "/dev/sr0 /mnt && ls /mnt/isolinux && echo QSUP-MOUNT-$((40+2))");
		if (t_serial_wait(&ser, "QSUP-MOUNT-42", &seen, 120000) < 0)
			fail_msg("the guest did not mount its CD-ROM:\n%s", ser.buf + seen);
		b = block(x, "inst", "cd");
		assert_true(json_is_true(json_object_get(b, "locked")));
		json_decref(b);
		cdrom_fails(x, "inst", "cd", "eject", NULL, "DeviceLocked", "the guest holds the "
		            "tray of cd locked");
		b = block(x, "inst", "cd");
		assert_non_null(json_object_get(b, "inserted"));   /* still in */
		json_decref(b);
		assert_non_null(strstr(ctl(x, 1, "cdrom", "inst", "cd", "eject"), "holds the tray"));
		r = cdrom(x, "inst", "cd", "eject", NULL, true);
		assert_string_equal(str(json_object_get(r, "return"), "medium"), "empty");
		json_decref(r);
		b = block(x, "inst", "cd");
		assert_null(json_object_get(b, "inserted"));
		json_decref(b);
	}

	/* The errors, each in words. */
	cdrom_fails(x, "inst", "nope", "eject", NULL, "NotFound", "no CD-ROM drive nope");
	cdrom_fails(x, "inst", "root", "eject", NULL, "InvalidArgument", "is a disk");
	snprintf(path, sizeof(path), "%s/missing.iso", x->d.dir);
	cdrom_fails(x, "inst", "cd", "insert", path, "NotFound", "missing.iso: No such file");
	cdrom_fails(x, "inst", "cd", "insert", x->d.dir, "InvalidArgument",
	            "not a regular file");
	cdrom_fails(x, "inst", "cd", "insert", "rel.iso", "InvalidArgument", "absolute");
	r = t_ctl_call(&x->c, "cdrom", json_pack("{s:s, s:s, s:s}", "name", "nobody",
	                       "id", "cd", "action", "eject"), 5000);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "NotFound");
	json_decref(r);
	r = t_ctl_call(&x->c, "cdrom", json_pack("{s:s, s:s, s:s}", "name", "inst",
	               "id", "cd", "action", "shake"), 5000);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "InvalidArgument");
	json_decref(r);

	/* Eject: QEMU has no medium; status and devices say empty. */
	r = cdrom(x, "inst", "cd", "eject", NULL, false);
	assert_string_equal(str(json_object_get(r, "return"), "medium"), "empty");
	json_decref(r);
	b = block(x, "inst", "cd");
	assert_null(json_object_get(b, "inserted"));
	assert_true(json_is_true(json_object_get(b, "tray_open")));
	json_decref(b);
	st = t_fx_must(x, "status", "inst", 5000);
	assert_string_equal(medium(st, "cd"), "empty");
	json_decref(st);

	/* Insert the other ISO with qsupctl (a relative path is made absolute):
	 * QEMU reads it through a fd set qsupd filled. */
	char cwd[4096];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(x->d.dir), 0);
	const char *out = ctl(x, 0, "cdrom", "inst", "cd", "insert", "two.iso");
	assert_int_equal(chdir(cwd), 0);
	(void)out;
	b = block(x, "inst", "cd");
	json_t *in = json_object_get(b, "inserted");
	assert_non_null(in);
	assert_false(json_is_true(json_object_get(b, "tray_open")));
	assert_true(json_is_true(json_object_get(in, "ro")));
	const char *file = str(in, "file");
	assert_int_equal(strncmp(file, "/dev/fdset/", 11), 0);
	char behind[600];
	assert_non_null(t_guest_fdset_file(&x->c, "inst", atoi(file + 11), behind,
	                                   sizeof(behind)));
	assert_string_equal(behind, two);
	json_decref(b);
	st = t_fx_must(x, "status", "inst", 5000);
	assert_string_equal(medium(st, "cd"), two);
	json_decref(st);
	out = ctl(x, 0, "devices", "inst");
	assert_non_null(strstr(out, "two.iso"));

	/* The first one back, then the second again: each replaces the one
	 * before, whose fd set goes (one path on a fd set at a time). */
	for (int k = 0; k < 2; k++) {
		r = cdrom(x, "inst", "cd", "insert", k ? two : one, false);
		assert_string_equal(str(json_object_get(r, "return"), "medium"), k ? two : one);
		json_decref(r);
	}
	json_t *sets = qmp(x, "inst", "query-fdsets", NULL), *set, *fd;
	size_t i, k, paths = 0;
	json_array_foreach(sets, i, set)
		json_array_foreach(json_object_get(set, "fds"), k, fd)
			paths += str(fd, "opaque")[0] == '/';
	json_decref(sets);
	assert_int_equal(paths, 1);

	/* A new qsupd reads the medium back from QEMU. */
	t_serial_close(&ser);
	t_loop_finish(&loop);
	t_ctl_close(&x->c);
	assert_int_equal(t_daemon_stop(&x->d), 0);
	t_fx_up(x, NULL);
	for (int n = 0; n < 100; n++) {
		st = t_fx_must(x, "status", "inst", 5000);
		if (!strcmp(str(st, "state"), "running") && !strcmp(medium(st, "cd"), two) &&
		    json_is_string(json_object_get(st, "display")))
			break;
		json_decref(st);
		st = NULL;
		usleep(100000);
	}
	if (!st)
		fail_msg("after the restart: no medium or display: %s", t_daemon_log(&x->d));
	assert_string_equal(str(st, "display"), display);
	json_decref(st);
	r = cdrom(x, "inst", "cd", "eject", NULL, false);
	assert_string_equal(str(json_object_get(r, "return"), "medium"), "empty");
	json_decref(r);
	json_decref(t_fx_must(x, "kill", "inst", 20000));
	cdrom_fails(x, "inst", "cd", "insert", one, "InvalidState", "only while it runs");
}

/* vnc-display = auto leaves a port that is taken alone; a password file is
 * what QEMU gets; without a password, query-vnc says so. */
static void test_vnc_auto_and_password_file(void **state)
{
	struct t_fx *x = *state;
	/* Hold the first port a display would get. */
	int s = -1, held = -1;
	for (int n = 0; n < 100 && held < 0; n++) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(5900 + n) };
		inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
		s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(s, 1) == 0)
			held = n;
		else
			close(s);
	}
	assert_true(held >= 0);
	char pwfile[600], profile[1600];
	snprintf(pwfile, sizeof(pwfile), "%s/vnc.pw", x->d.dir);
	FILE *f = fopen(pwfile, "w");
	assert_non_null(f);
	fputs("Zq7-x!k\n", f);
	fclose(f);
	chmod(pwfile, 0600);
	snprintf(profile, sizeof(profile), "%s[display]\nvnc = yes\nvnc-display = auto\n"
	         "password-file = %s\n", FW_PROFILE, pwfile);
	t_daemon_profile(&x->d, "pw", profile);
	snprintf(profile, sizeof(profile), "%s[display]\nvnc = yes\nvnc-display = auto\n",
	         FW_PROFILE);
	t_daemon_profile(&x->d, "open", profile);
	t_fx_up(x, (const char *const[]){ "--log-level", "debug", NULL });

	json_t *st = t_fx_must(x, "start", "pw", 30000);
	const char *uri = str(st, "display");
	int port = atoi(strrchr(uri, ':') + 1);
	printf("# port %d held by the test; qsupd chose %s\n", 5900 + held, uri);
	assert_int_not_equal(port, 5900 + held);
	assert_true(port >= 5900 && port < 6000);
	assert_string_equal(str(st, "display_auth"), "password-file");
	json_decref(st);
	json_t *vnc = qmp(x, "pw", "query-vnc", NULL);
	assert_string_equal(str(vnc, "auth"), "vnc");
	assert_int_equal(atoi(str(vnc, "service")), port);
	json_decref(vnc);
	assert_true(t_fx_log_has(x, "VNC display"));
	assert_false(t_fx_log_has(x, "Zq7-x!k"));
	json_t *r = t_ctl_call(&x->c, "display", json_pack("{s:s, s:b}", "name", "pw",
	                       "password", true), 5000);
	assert_string_equal(str(json_object_get(r, "return"), "password"), "Zq7-x!k");
	json_decref(r);
	/* The argv has password=on and no password. */
	r = t_ctl_call(&x->c, "argv", json_pack("{s:s}", "name", "pw"), 5000);
	char *text = json_dumps(json_object_get(r, "return"), 0);
	assert_non_null(strstr(text, ",password=on"));
	assert_null(strstr(text, "Zq7"));
	free(text);
	json_decref(r);

	/* A second guest on auto gets another display; no password here. */
	st = t_fx_must(x, "start", "open", 30000);
	int port2 = atoi(strrchr(str(st, "display"), ':') + 1);
	assert_int_not_equal(port2, port);
	assert_int_not_equal(port2, 5900 + held);
	assert_string_equal(str(st, "display_auth"), "none");
	json_decref(st);
	vnc = qmp(x, "open", "query-vnc", NULL);
	assert_string_equal(str(vnc, "auth"), "none");
	json_decref(vnc);
	r = t_ctl_call(&x->c, "display", json_pack("{s:s, s:b}", "name", "open",
	               "password", true), 5000);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "NotFound");
	json_decref(r);
	close(s);
	json_decref(t_fx_must(x, "kill", "pw", 20000));
	json_decref(t_fx_must(x, "kill", "open", 20000));
	r = t_ctl_call(&x->c, "display", json_pack("{s:s}", "name", "pw"), 5000);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "InvalidState");
	json_decref(r);
	/* A password file that is not one fails the start, once, in words. */
	f = fopen(pwfile, "w");
	fputs("much-too-long-for-vnc\n", f);
	fclose(f);
	r = t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "pw"), 30000);
	const char *desc = str(json_object_get(r, "error"), "desc");
	if (!strstr(desc, "password-file"))
		fail_msg("start with a bad password file: %s", desc);
	assert_null(strstr(desc, "much-too-long"));
	json_decref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_iso_install_flow, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_vnc_auto_and_password_file, t_fx_setup,
		                                t_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
