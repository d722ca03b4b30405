/* Between a start request and QEMU's exec: see prepare.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdpass.h"
#include "guest.h"
#include "image.h"
#include "log.h"
#include "prepare.h"
#include "subproc.h"
#include "snaprec.h"
#include "statedir.h"
#include "vnc.h"

/* One preparation's inputs and findings. The thread-pool steps read only
 * what is here (and g->run_profile, which stays until the guest ends, after
 * preparation). */
struct sv_prep {
	uv_work_t work;
	struct sv_guest *g;
	const struct sv_profile *p;
	struct sv_id_config idc;
	struct sv_facts facts;
	char name[SV_NAME_MAX + 1];
	char rundir[PATH_MAX], state_dir[PATH_MAX];
	uid_t *taken;                   /* uids of the daemon's other QEMUs */
	size_t ntaken;
	char *intent;                   /* the state file to write before the spawn */
	bool intent_held;               /* taken with record_begin, record_end due */
	bool intent_written;
	int rc;
	struct sv_error err;
	bool config;                    /* rc is the profile's fault: no retry */
	bool resolved;                  /* step 1 done */
	/* step 1 */
	struct sv_identity ident;
	bool *missing;                  /* per drive: a sized image to create */
	bool any_missing, vars_missing;
	struct sv_strv created;         /* directories made for those images */
	char vnc_password[16];          /* to set over QMP; "": none */
	/* step 3 */
	char **tops;                    /* per drive: its snapshot overlay, or NULL */
	struct sv_chain *chains;        /* per drive */
	size_t nchains;                 /* the profile may be gone when pp is freed */
	struct sv_argv argv;
	int *fds;
	char (*taps)[SV_IFNAMSIZ];
	int qemudir_fd;
};

static void step_create(struct sv_guest *g);

static void prep_free(struct sv_prep *pp)
{
	if (!pp)
		return;
	for (size_t i = 0; pp->chains && i < pp->nchains; i++)
		sv_chain_free(&pp->chains[i]);
	free(pp->chains);
	for (size_t i = 0; pp->tops && i < pp->nchains; i++)
		free(pp->tops[i]);
	free(pp->tops);
	if (pp->fds)
		sv_fdpass_close(pp->fds, pp->argv.nfds);
	free(pp->fds);
	free(pp->taps);
	if (pp->qemudir_fd >= 0)
		close(pp->qemudir_fd);
	sv_argv_free(&pp->argv);
	free(pp->missing);
	sv_strv_free(&pp->created);
	explicit_bzero(pp->vnc_password, sizeof(pp->vnc_password));
	free(pp->taken);
	free(pp->intent);
	free(pp);
}

/* A step ended: go on with next, unless the guest is going away or the
 * start was cancelled or failed. */
static bool step_ok(struct sv_guest *g, int status)
{
	struct sv_prep *pp = g->prep;
	g->prep_working = false;
	if (g->freeing) {
		sv_guest_unhold(g);
		return false;
	}
	sv_guest_unhold(g);
	if (g->prep_abort) {
		sv_guest_prepared(g, -ECANCELED, "start cancelled by operator");
		return false;
	}
	if (status < 0 || pp->rc < 0) {
		char msg[700];
		snprintf(msg, sizeof(msg), "start failed: %s", pp->rc < 0 ? pp->err.msg
		         : uv_strerror(status));
		/* A profile this host cannot run (its user is unknown, say) fails
		 * the same way every time: not retried by the restart policy. */
		g->start_config_error = pp->config;
		sv_guest_prepared(g, pp->rc < 0 ? pp->rc : status, msg);
		return false;
	}
	return true;
}

static int queue(struct sv_guest *g, uv_work_cb work, uv_after_work_cb after)
{
	g->prep->work.data = g->prep;
	g->prep_working = true;
	sv_guest_hold(g);
	int rc = uv_queue_work(g->env->loop, &g->prep->work, work, after);
	if (rc < 0) {
		g->prep_working = false;
		sv_guest_unhold(g);
	}
	return rc;
}

/* ---- 1: identity, missing images ---- */

static bool missing(const char *path)
{
	return path && access(path, F_OK) < 0 && errno == ENOENT;
}

static bool uid_taken(const struct sv_prep *pp, uid_t uid)
{
	for (size_t i = 0; i < pp->ntaken; i++)
		if (pp->taken[i] == uid)
			return true;
	return false;
}

/* Make the missing directories above path (an image about to be created),
 * top-down, mode 0700: only qsupd opens the files in them (QEMU gets fds,
 * whatever uid it runs as). Each one made is added to pp->created. */
static int make_parents(struct sv_prep *pp, const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	struct stat st;
	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : sv_error_set(&pp->err, -ENOTDIR, "%s is not a "
		                                              "directory", dir);
	for (char *p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(dir, 0700) == 0) {
			if (sv_strv_push(&pp->created, dir) < 0)
				return sv_error_set(&pp->err, -ENOMEM, "out of memory");
		} else if (errno != EEXIST) {
			return sv_error_set(&pp->err, -errno, "cannot create the directory %s: %s",
			                    dir, strerror(errno));
		}
		*p = c;
		if (!c)
			return 0;
	}
}

static void resolve(struct sv_prep *pp)
{
	const struct sv_profile *p = pp->p;
	char rec[PATH_MAX];
	pp->resolved = true;
	pp->rc = sv_identity_resolve(p, pp->name, &pp->idc, &pp->ident, &pp->err);
	pp->config = pp->rc < 0;
	/* Two guests of this daemon never share a uid: the next free one. */
	for (uint32_t n = 0; pp->rc == 0 && pp->ident.dynamic && n < pp->idc.count &&
	     uid_taken(pp, pp->ident.uid); n++)
		pp->ident.uid = sv_identity_next_uid(pp->ident.uid, pp->idc.first, pp->idc.count);
	/* The snapshot record: each disk boots its active overlay. */
	json_t *snaps = NULL;
	if (pp->rc == 0 && (pp->rc = sv_snaprec_read(p, &snaps, &pp->err)) < 0)
		pp->config = true;
	for (size_t i = 0; snaps && i < p->ndrives; i++) {
		json_t *a = sv_snap_disk(&p->drives[i]) ? sv_snaprec_active(snaps, p->drives[i].id)
		            : NULL;
		if (a && !(pp->tops[i] = strdup(sv_jstr(a, "file", ""))))
			pp->rc = sv_error_set(&pp->err, -ENOMEM, "out of memory");
	}
	json_decref(snaps);
	for (size_t i = 0; pp->rc == 0 && i < p->ndrives; i++) {
		const struct sv_drive *d = &p->drives[i];
		if (d->cdrom || d->size == 0 || pp->tops[i] || !missing(d->file))
			continue;
		if (sv_statedir_image_created(pp->state_dir, pp->name, d->file)) {
			sv_statedir_images_path(pp->state_dir, pp->name, rec, sizeof(rec));
			pp->rc = sv_error_set(&pp->err, -ENOENT, "disk %s: %s was created by qsupd "
			                      "and has disappeared; qsupd does not make a blank "
			                      "disk in its place (bring the image back, or take it "
			                      "out of %s to have a new one made)", d->id, d->file,
			                      rec);
		}
		pp->missing[i] = true;
		pp->any_missing = true;
		if (pp->rc == 0 && (pp->rc = make_parents(pp, d->file)) < 0)
			pp->config = true;
	}
	pp->vars_missing = p->firmware == SV_FIRMWARE_UEFI && p->uefi_vars_template &&
	                   missing(p->uefi_vars);
	pp->any_missing |= pp->vars_missing;
}

/* ---- 2: qemu-img create, the UEFI vars copy ---- */

static void step_open(struct sv_guest *g);

static void on_prep_proc_closed(uv_handle_t *h)
{
	struct sv_guest *g = h->data;
	free(h);
	sv_guest_unhold(g);
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
	if (!g->created)
		g->created = json_array();
	json_array_append_new(g->created, json_string(d->file));
	g->prep_index++;
	step_create(g);
}

/* Spawn qemu-img create for drive d; its output goes to qemu-img.log. The
 * image is born 0600 (umask 077 for the child): QEMU gets it as an fd. */
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
	g->prep_proc = calloc(1, sizeof(*g->prep_proc));
	if (!g->prep_proc) {
		close(fd);
		return -ENOMEM;
	}
	g->prep_proc->data = g;
	sv_guest_hold(g);
	int rc = sv_spawn_logged(g->env->loop, g->prep_proc, argv, fd, on_qemu_img_exit);
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
		sv_guest_unhold(g);
		return;
	}
	sv_guest_unhold(g);
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
	step_create(g);
}

static void step_create(struct sv_guest *g)
{
	const struct sv_profile *p = g->run_profile;
	struct sv_prep *pp = g->prep;
	if (g->prep_abort) {
		sv_guest_prepared(g, -ECANCELED, "start cancelled by operator");
		return;
	}
	for (; g->prep_index < p->ndrives; g->prep_index++) {
		const struct sv_drive *d = &p->drives[g->prep_index];
		if (!pp->missing[g->prep_index])
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
	if (!g->prep_vars_done && pp->vars_missing) {
		g->prep_copying = true;
		g->prep_fs.data = g;
		sv_guest_hold(g);
		int rc = uv_fs_copyfile(g->env->loop, &g->prep_fs, p->uefi_vars_template,
		                        p->uefi_vars, UV_FS_COPYFILE_EXCL, on_copied);
		if (rc < 0) {
			g->prep_copying = false;
			sv_guest_unhold(g);
			char msg[900];
			snprintf(msg, sizeof(msg), "start failed: copying %s: %s",
			         p->uefi_vars_template, uv_strerror(rc));
			sv_guest_prepared(g, rc, msg);
		}
		return;
	}
	step_open(g);
}

/* ---- 3: records, chains, argv, fds ---- */

/* RUNDIR/NAME/qemu: the one place QEMU may create files (an incoming
 * migration's socket), its identity's own; an fd to it for QEMU. */
static int qemu_dir(struct sv_prep *pp)
{
	char path[PATH_MAX + 8];
	struct stat st;
	snprintf(path, sizeof(path), "%s/qemu", pp->rundir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return sv_error_set(&pp->err, -errno, "%s: %s", path, strerror(errno));
	int fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return sv_error_set(&pp->err, -errno, "%s: %s", path, strerror(errno));
	pp->qemudir_fd = fd;
	if (pp->ident.drop && (st.st_uid != pp->ident.uid || st.st_gid != pp->ident.gid)) {
		char self[64];
		snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
		if (chown(self, pp->ident.uid, pp->ident.gid) < 0)
			return sv_error_set(&pp->err, -errno, "%s: chown: %s", path, strerror(errno));
	}
	return 0;
}

/* VNC: a free display for vnc-display = auto; the password to set. */
static int display(struct sv_prep *pp)
{
	const struct sv_profile *p = pp->p;
	int rc = 0;
	if (p->vnc_display_auto && (rc = sv_vnc_free_display(p->vnc_listen, &pp->err)) >= 0)
		pp->facts.vnc_display = rc;
	if (rc >= 0 && p->vnc_password_file)
		rc = sv_vnc_password_read(p->vnc_password_file, pp->vnc_password,
		                          sizeof(pp->vnc_password), &pp->err);
	if (rc >= 0 && p->vnc_password_generate)
		rc = sv_vnc_password_generate(pp->rundir, pp->vnc_password,
		                              sizeof(pp->vnc_password), &pp->err);
	return rc < 0 ? rc : 0;
}

static void open_files(struct sv_prep *pp)
{
	const struct sv_profile *p = pp->p;
	for (size_t i = 0; i < p->ndrives; i++) {
		const struct sv_drive *d = &p->drives[i];
		if (pp->missing[i] && (pp->rc = sv_statedir_image_record(pp->state_dir, pp->name,
		                                                         d->file, &pp->err)) < 0)
			return;
		if (d->file && !d->cdrom &&
		    (pp->rc = sv_image_chain(pp->tops[i] ? pp->tops[i] : d->file,
		                             pp->tops[i] ? "qcow2" : d->format, &pp->chains[i],
		                             &pp->err)) < 0)
			return;
	}
	pp->facts.chains = pp->chains;
	pp->facts.tops = (const char *const *)pp->tops;
	if (p->vnc && (pp->rc = display(pp)) < 0) {
		pp->config = true;
		return;
	}
	if ((pp->rc = sv_argv_build(p, &pp->facts, &pp->argv, &pp->err)) < 0)
		return;
	pp->fds = calloc(pp->argv.nfds + 1, sizeof(*pp->fds));
	pp->taps = calloc(pp->argv.nfds + 1, sizeof(*pp->taps));
	if (!pp->fds || !pp->taps) {
		free(pp->fds);
		pp->fds = NULL;
		pp->rc = sv_error_set(&pp->err, -ENOMEM, "out of memory");
		return;
	}
	if ((pp->rc = sv_fdpass_open(&pp->argv, &pp->ident, pp->fds, pp->taps, &pp->err)) < 0) {
		free(pp->fds);
		pp->fds = NULL;
		return;
	}
	if ((pp->rc = qemu_dir(pp)) < 0)
		return;
	/* The intent, last: a later qsupd must know that a QEMU is on its way,
	 * and a start that cannot record it does not spawn. */
	int e = sv_state_file_write(pp->rundir, ".state.json.intent", pp->intent);
	if (e)
		pp->rc = sv_error_set(&pp->err, -e, "cannot record the guest's state in %.500s: "
		                      "%s", pp->rundir, strerror(e));
	pp->intent_written = e == 0;
}

/* The one thread-pool step of a start: identity and images first; when no
 * image is missing (the usual case), the files right away, else they wait
 * for the images (step_create, then this again). */
static void prep_work(uv_work_t *w)
{
	struct sv_prep *pp = w->data;
	if (!pp->resolved) {
		resolve(pp);
		if (pp->rc < 0 || pp->any_missing)
			return;
	}
	open_files(pp);
}

/* ---- 4: launch ---- */

static void prep_done(uv_work_t *w, int status);

/* The intent's record, taken for the job about to be queued, which
 * writes it (the write of the record that was due, state.h), and given
 * back once that job is over, written or not. */
static void intent_take(struct sv_prep *pp)
{
	free(pp->intent);
	pp->intent_written = false;
	pp->intent = pp->g->env->record_begin(pp->g->env->owner, pp->g);
	pp->intent_held = true;
}

static void intent_give_back(struct sv_prep *pp)
{
	if (!pp->intent_held)
		return;
	pp->intent_held = false;
	pp->g->env->record_end(pp->g->env->owner, pp->g, pp->intent_written ? 0 : -EAGAIN);
}

/* The job that ends in open_files(), with the intent it writes. */
static int queue_open(struct sv_guest *g)
{
	intent_take(g->prep);
	if (!g->prep->intent || queue(g, prep_work, prep_done) < 0) {
		intent_give_back(g->prep);
		return -ENOMEM;
	}
	return 0;
}

static void prep_done(uv_work_t *w, int status)
{
	struct sv_prep *pp = w->data;
	struct sv_guest *g = pp->g;
	intent_give_back(pp);
	if (!step_ok(g, status))
		return;
	g->ident = pp->ident;
	for (size_t i = 0; i < pp->created.n; i++) {
		if (!g->created)
			g->created = json_array();
		json_array_append_new(g->created, json_string(pp->created.v[i]));
		sv_log(SV_LOG_INFO, g->name, "created the directory %s", pp->created.v[i]);
	}
	sv_strv_free(&pp->created);
	if (!pp->fds) {   /* images to make first */
		g->prep_index = 0;
		step_create(g);
		return;
	}
	/* The guest now holds what QEMU gets: fds, argv, the dir. */
	sv_argv_free(&g->start_argv);
	g->start_argv = pp->argv;
	memset(&pp->argv, 0, sizeof(pp->argv));
	g->pass_fds = pp->fds;
	g->pass_taps = pp->taps;
	const struct sv_profile *p = g->run_profile;
	g->vnc_display = !p->vnc ? -1 : pp->facts.vnc_display >= 0 ? pp->facts.vnc_display
	               : (int)p->vnc_display;
	memcpy(g->vnc_password, pp->vnc_password, sizeof(g->vnc_password));
	explicit_bzero(pp->vnc_password, sizeof(pp->vnc_password));
	if (p->vnc && p->vnc_display_auto)
		sv_log(SV_LOG_INFO, g->name, "VNC display %d (vnc-display = auto): %s:%d",
		       g->vnc_display, p->vnc_listen, 5900 + g->vnc_display);
	pp->fds = NULL;
	pp->taps = NULL;
	for (size_t i = 0; i < g->start_argv.nfds; i++)
		if (g->pass_taps[i][0] && g->start_argv.fds[i].kind == SV_FD_BRIDGE)
			sv_log(SV_LOG_INFO, g->name, "%s: tap %s on bridge %s",
			       g->start_argv.fds[i].what, g->pass_taps[i],
			       g->start_argv.fds[i].bridge);
	sv_guest_prepared(g, 0, NULL);
}

static void step_open(struct sv_guest *g)
{
	if (queue_open(g) < 0)
		sv_guest_prepared(g, -ENOMEM, "start failed: cannot queue work");
}

/* ---- entry points ---- */

void sv_prepare_run(struct sv_guest *g)
{
	const struct sv_profile *p = g->run_profile;
	struct sv_prep *pp = calloc(1, sizeof(*pp));
	g->prep_index = 0;
	g->prep_abort = false;
	g->prep_vars_done = false;
	json_decref(g->created);
	g->created = NULL;
	if (pp) {
		pp->missing = calloc(p->ndrives + 1, sizeof(*pp->missing));
		pp->chains = calloc(p->ndrives + 1, sizeof(*pp->chains));
		pp->tops = calloc(p->ndrives + 1, sizeof(*pp->tops));
	}
	if (!pp || !pp->missing || !pp->chains || !pp->tops) {
		if (pp) {
			free(pp->missing);
			free(pp->chains);
			free(pp->tops);
		}
		free(pp);
		sv_guest_prepared(g, -ENOMEM, "start failed: out of memory");
		return;
	}
	prep_free(g->prep);
	g->prep = pp;
	pp->g = g;
	pp->p = p;
	pp->nchains = p->ndrives;
	pp->qemudir_fd = -1;
	pp->idc = *g->env->idc;
	snprintf(pp->name, sizeof(pp->name), "%s", g->name);
	snprintf(pp->rundir, sizeof(pp->rundir), "%s", g->rundir);
	snprintf(pp->state_dir, sizeof(pp->state_dir), "%s", g->env->state_dir);
	sv_guest_facts(g, g->start_incoming, &pp->facts);
	pp->taken = g->env->uids_taken(g->env->owner, g, &pp->ntaken);
	if (!pp->taken || queue_open(g) < 0)   /* the guest is starting already */
		sv_guest_prepared(g, -ENOMEM, "start failed: out of memory");
}

int sv_prepare_qemudir_fd(struct sv_guest *g)
{
	return g->prep ? g->prep->qemudir_fd : -1;
}

void sv_prepare_close_fds(struct sv_guest *g)
{
	if (g->pass_fds)
		sv_fdpass_close(g->pass_fds, g->start_argv.nfds);
	free(g->pass_fds);
	free(g->pass_taps);
	g->pass_fds = NULL;
	g->pass_taps = NULL;
	if (g->prep && !g->prep_working) {
		prep_free(g->prep);
		g->prep = NULL;
	}
}

void sv_prepare_release(struct sv_guest *g)
{
	close_prep_proc(g);   /* qemu-img runs on; its result is dropped */
	sv_prepare_close_fds(g);
	/* A step still in the thread pool finds g->freeing and drops g->prep
	 * through the guest's last handle. */
}

void sv_prepare_free(struct sv_guest *g)
{
	prep_free(g->prep);
	g->prep = NULL;
}
