/*
 * Running a helper program (qemu-img) on the loop: uv_spawn with an argv,
 * no shell, stdin from /dev/null, stdout and stderr read into one buffer,
 * and a callback once the program has exited and both streams are closed.
 */
#ifndef SV_SUBPROC_H
#define SV_SUBPROC_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* The program's exit status (or the signal that ended it, else 0) and what
 * it wrote (NUL-terminated, at most SV_RUN_MAX bytes kept: the first ones),
 * borrowed for the call. */
typedef void (*sv_run_cb)(int64_t status, int sig, const char *out, void *arg);

#define SV_RUN_MAX (256u << 10)

/* Spawn argv[0] as sv_run() does, into proc (the caller's, its data set),
 * stdin from /dev/null, stdout and stderr to fd (a log the caller opened,
 * and closes once this returns), the files it makes born 0600 (umask 077
 * for the child). Returns 0 (cb when it exits) or a negative libuv error,
 * after which the caller uv_closes proc, as libuv wants. */
int sv_spawn_logged(uv_loop_t *loop, uv_process_t *proc, char *const argv[], int fd,
                    uv_exit_cb cb);

/* qemu-img with args (NULL-terminated, those after "qemu-img"; at most
 * 22), its output into log (created or truncated, 0640). While it runs,
 * *handle is its process (to signal it); once it has ended *handle is
 * NULL and done(data, ok) is called, ok when it exited 0. Returns 0, or a
 * negative errno (done is not called). */
int sv_qemu_img(uv_loop_t *loop, const char *log, const char *const *args,
                void (*done)(void *data, bool ok), void *data, uv_process_t **handle);

/* Spawn argv[0] (looked up in a fixed PATH of the system's bin dirs; LC_ALL=C)
 * with argv (NULL-terminated). Returns 0 (cb is called once, never before
 * this returns) or a negative libuv error (cb is not called). */
int sv_run(uv_loop_t *loop, char *const argv[], sv_run_cb cb, void *arg);

#endif
