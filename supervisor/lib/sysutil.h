/*
 * Processes and directories, as the daemon and its tests see them through
 * /proc and the file system. Small synchronous calls on local, in-memory
 * files (procfs, the run dir).
 */
#ifndef SV_SYSUTIL_H
#define SV_SYSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* mkdir -p: the missing parents 0755, path itself with mode. Returns 0 or
 * a negative errno. */
int sv_mkdir_p(const char *path, mode_t mode);

/* /proc/PID/stat's start time (clock ticks since boot), 0 if unknown, a
 * zombie, or in its exit (PF_EXITING: a killed process still closing its
 * files, its locks with them). */
unsigned long long sv_proc_starttime(int pid);

/* Does live process pid's command line name guest `name`
 * (-name guest=NAME,...)? */
bool sv_proc_is_guest(int pid, const char *name);

/* The argument after opt in pid's command line ("-accel" gives "kvm") into
 * out. Returns false when there is none. */
bool sv_proc_arg_after(int pid, const char *opt, char *out, size_t size);

/* True when pid is a live process (not gone, not a zombie, not in its
 * exit). */
bool sv_pid_alive(int pid);

/* Whether pid's main thread sleeps in a wait for events (poll, ppoll,
 * select, epoll): for QEMU, its main loop idle, so a QMP command would be
 * answered. False when it runs, is stopped, waits on anything else (a
 * lock, the disk), or /proc does not say (/proc/PID/syscall needs the
 * right to ptrace it). */
bool sv_proc_waits_for_events(int pid);

/* This boot's id (/proc/sys/kernel/random/boot_id, 36 characters: a UUID)
 * into buf (at least 37 bytes). path NULL: that file. Returns 0, or a
 * negative errno (-EBADMSG: not a boot id). */
int sv_boot_id(const char *path, char *buf, size_t size);

/* True when s looks like a boot id: 36 characters, hex digits and dashes. */
bool sv_boot_id_valid(const char *s);

#endif
