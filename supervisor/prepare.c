/* Files a guest needs before QEMU starts: see prepare.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "guest.h"
#include "log.h"
#include "prepare.h"

static void prepare_step(struct sv_guest *g);

static void on_prep_proc_closed(uv_handle_t *h)
{
	struct sv_guest *g = h->data;
	free(h);
	sv_guest_handle_gone(g);
}

static void close_prep_proc(struct sv_guest *g)
{
	if (g->prep_proc) {
		uv_close((uv_handle_t *)g->prep_proc, on_prep_proc_closed);
		g->prep_proc = NULL;
	}
}

static void on_qemu_img_exit(uv_process_t *p, int64_t status, int sig)
{
	struct sv_guest *g = p->data;
	const struct sv_drive *d = &g->run_profile->drives[g->prep_index];
	close_prep_proc(g);
	if (status != 0 || sig != 0) {
		char tail[700], msg[900];
		sv_guest_log_tail(g, "qemu-img.log", tail, sizeof(tail));
		snprintf(msg, sizeof(msg), "start failed: qemu-img create %s: %s", d->file,
		         tail[0] ? tail : "failed");
		sv_guest_prepared(g, -EIO, msg);
		return;
	}
	sv_log(SV_LOG_INFO, g->name, "created %s (%s, %llu bytes)", d->file, d->format,
	       (unsigned long long)d->size);
	g->prep_index++;
	prepare_step(g);
}

/* Spawn qemu-img create for drive d; its output goes to qemu-img.log. */
static int create_image(struct sv_guest *g, const struct sv_drive *d)
{
	char log[4200], size[32];
	snprintf(log, sizeof(log), "%s/qemu-img.log", g->rundir);
	snprintf(size, sizeof(size), "%llu", (unsigned long long)d->size);
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	/* "--" ends the options: a file name can never be taken for one. */
	char *argv[] = { "qemu-img", "create", "-q", "-f", d->format, "--", d->file, size, NULL };
	static char *env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	                       "LC_ALL=C", NULL };
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE },
		{ .flags = UV_INHERIT_FD, .data.fd = fd },
		{ .flags = UV_INHERIT_FD, .data.fd = fd },
	};
	uv_process_options_t o = { .exit_cb = on_qemu_img_exit, .file = argv[0], .args = argv,
	                           .env = env, .stdio = stdio, .stdio_count = 3 };
	g->prep_proc = calloc(1, sizeof(*g->prep_proc));
	if (!g->prep_proc) {
		close(fd);
		return -ENOMEM;
	}
	g->prep_proc->data = g;
	g->handles++;
	int rc = uv_spawn(g->d->loop, g->prep_proc, &o);
	close(fd);
	if (rc < 0)
		close_prep_proc(g);
	return rc;
}

static void on_copied(uv_fs_t *req)
{
	struct sv_guest *g = req->data;
	ssize_t rc = req->result;
	uv_fs_req_cleanup(req);
	g->prep_copying = false;
	if (g->freeing) {
		sv_guest_handle_gone(g);
		return;
	}
	sv_guest_handle_gone(g);
	if (rc < 0) {
		char msg[900];
		snprintf(msg, sizeof(msg), "start failed: copying %s to %s: %s",
		         g->run_profile->uefi_vars_template, g->run_profile->uefi_vars,
		         uv_strerror((int)rc));
		sv_guest_prepared(g, (int)rc, msg);
		return;
	}
	sv_log(SV_LOG_INFO, g->name, "created %s from %s", g->run_profile->uefi_vars,
	       g->run_profile->uefi_vars_template);
	g->prep_vars_done = true;
	prepare_step(g);
}

static bool missing(const char *path)
{
	return path && access(path, F_OK) < 0 && errno == ENOENT;
}

static void prepare_step(struct sv_guest *g)
{
	const struct sv_profile *p = g->run_profile;
	if (g->prep_abort) {
		sv_guest_prepared(g, -ECANCELED, "start cancelled by operator");
		return;
	}
	for (; g->prep_index < p->ndrives; g->prep_index++) {
		const struct sv_drive *d = &p->drives[g->prep_index];
		if (d->size == 0 || d->cdrom || !missing(d->file))
			continue;
		sv_log(SV_LOG_INFO, g->name, "creating %s with qemu-img", d->file);
		int rc = create_image(g, d);
		if (rc < 0) {
			char msg[900];
			snprintf(msg, sizeof(msg), "start failed: cannot run qemu-img: %s",
			         uv_strerror(rc));
			sv_guest_prepared(g, rc, msg);
		}
		return;   /* on_qemu_img_exit() goes on */
	}
	if (!g->prep_vars_done && p->firmware == SV_FIRMWARE_UEFI && p->uefi_vars_template &&
	    missing(p->uefi_vars)) {
		g->prep_copying = true;
		g->prep_fs.data = g;
		g->handles++;
		int rc = uv_fs_copyfile(g->d->loop, &g->prep_fs, p->uefi_vars_template,
		                        p->uefi_vars, UV_FS_COPYFILE_EXCL, on_copied);
		if (rc < 0) {
			g->prep_copying = false;
			sv_guest_handle_gone(g);
			char msg[900];
			snprintf(msg, sizeof(msg), "start failed: copying %s: %s",
			         p->uefi_vars_template, uv_strerror(rc));
			sv_guest_prepared(g, rc, msg);
		}
		return;
	}
	sv_guest_prepared(g, 0, NULL);
}

void sv_prepare_run(struct sv_guest *g)
{
	g->prep_index = 0;
	g->prep_abort = false;
	g->prep_vars_done = false;
	prepare_step(g);
}

void sv_prepare_release(struct sv_guest *g)
{
	close_prep_proc(g);   /* qemu-img runs on; its result is dropped */
}
