/*
 * One owner per run dir, and never two QEMUs for one guest.
 *
 * The run dir: qsupd holds an exclusive flock on RUNDIR/qsupd.lock (its pid
 * written inside) for its whole life, taken before it reads any state or
 * touches any guest. A second qsupd on the same run dir exits at once.
 *
 * A guest: a lock file in a host-wide lock dir (/run/lock/qsup for root),
 * named after the device and inode of the directory the profile lives in
 * (a symlink's target's) and the guest's name, so that every qsupd finds
 * the same file for the same profile, whatever its run dir, and an edit
 * that replaces the profile file keeps it. qsupd takes it (flock,
 * LOCK_EX | LOCK_NB) before it starts a QEMU (start, restart, restore, an
 * incoming migration), and that QEMU inherits the open file as fd
 * SV_FD_LOCK: the lock lives exactly as long as the QEMU, even when qsupd
 * dies. While another process holds it, no start runs. The file holds the
 * pid of its QEMU (of the qsupd starting one, until QEMU runs).
 *
 * Taking a lock file checks, after flock, that the path still names the
 * file locked (a release unlinks it), so that two takers can never hold
 * two different files of one name.
 */
#ifndef SV_LOCK_H
#define SV_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util.h"

/* Take RUNDIR/qsupd.lock for this process and write our pid in it.
 * Returns the fd (keep it open), or a negative errno with the reason in
 * err: -EBUSY "another qsupd (pid N) owns RUNDIR". */
int sv_rundir_lock(const char *run_dir, struct sv_error *err);

/* The lock dir for a qsupd with euid me: /run/lock/qsup for root, else
 * $XDG_RUNTIME_DIR/qsup/locks, else RUN_DIR/locks. */
void sv_lock_dir_default(char *buf, size_t size, uid_t me, const char *run_dir);

/* Create the lock dir (0755, owned by us; anything else there is refused).
 * Returns 0 or a negative errno with the reason in err. */
int sv_lock_dir_prepare(const char *dir, struct sv_error *err);

/* The lock file of guest name whose profile is at profile_path. Returns 0,
 * or a negative errno when the profile's directory cannot be found. */
int sv_guest_lock_path(const char *lock_dir, const char *profile_path, const char *name,
                       char *out, size_t size, struct sv_error *err);

/* Take the guest lock at path. Returns the fd (O_CLOEXEC), or a negative
 * errno with the reason in err: -EBUSY "another process (pid N) holds the
 * lock of guest NAME (PATH)"; -EAGAIN when that process has exited and its
 * last threads are letting go of their fds (try again shortly). */
int sv_guest_lock_take(const char *path, const char *name, struct sv_error *err);

/* Record pid in a lock we hold (the QEMU that now holds it too). */
void sv_guest_lock_set_pid(int fd, int pid);

/* Give a lock up that we hold: unlink the file, then close fd. Only when
 * no QEMU holds it any more. */
void sv_guest_lock_release(const char *path, int fd);

/* Is the lock at path held by anyone (without keeping it)? Returns 1 held
 * (*pid: the pid recorded in it, 0 if none), 0 free, or a negative errno. */
int sv_guest_lock_held(const char *path, int *pid);

/* Does process pid hold the lock file at path as its fd SV_FD_LOCK? */
bool sv_proc_holds_lock(int pid, const char *path);

/* Does process pid have dir (RUNDIR/NAME/qemu) as its fd SV_FD_QEMUDIR, i.e.
 * was it started by a qsupd on this run dir? */
bool sv_proc_has_dir(int pid, const char *dir);

/* A live process (not a zombie) whose command line names guest name, whose
 * fd SV_FD_LOCK is the lock file at path and whose fd SV_FD_QEMUDIR is dir:
 * scans /proc. Returns its pid, or 0. */
int sv_lock_find_holder(const char *path, const char *name, const char *dir);

#endif
