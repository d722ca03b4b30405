/*
 * Internal to the network manager (netmgr.h): netmgr.c brings networks up
 * and down (bridge, address, nftables) and keeps the list; net_dnsmasq.c
 * runs each network's dnsmasq (spawned, watched, restarted, adopted after
 * a qsupd restart) and reads its leases.
 */
#ifndef SV_NETMGR_INT_H
#define SV_NETMGR_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "netmgr.h"

enum net_state { NET_DOWN, NET_STARTING, NET_UP, NET_STOPPING };
extern const char *const nm_state_names[];

struct net_wait {
	struct net_wait *next;
	sv_net_cb cb;
	void *arg;
};

struct lease {
	uint8_t mac[6];
	char ip[16];
	char host[64];
	long long expiry;
};

/* One thread-pool job of a network: its inputs and results. */
struct net_job {
	uv_work_t work;
	struct sv_net *n;
	int kind;               /* JOB_UP, JOB_DOWN, JOB_RECORD, JOB_LEASES */
	int rc;
	struct sv_error err;
	bool forward_on;        /* JOB_UP: ip_forward was turned on */
	int pid;                /* JOB_RECORD: dnsmasq's pid, and its start time */
	unsigned long long starttime;
	struct lease *leases;   /* JOB_LEASES */
	size_t nleases;
};
enum { JOB_UP, JOB_DOWN, JOB_RECORD, JOB_LEASES };

struct sv_net {
	struct sv_netmgr *m;
	struct sv_network_def *def;
	enum net_state state;
	char dir[PATH_MAX];     /* RUNDIR/net/NAME */
	char error[512];        /* the last failure */
	struct net_wait *waiters;       /* sv_net_up, sv_net_down callers */
	bool busy;              /* a job or a spawned nft runs */
	/* dnsmasq: our child (proc), or adopted (pidfd) */
	uv_process_t *proc;
	int pid;
	unsigned long long starttime;
	int pidfd;
	uv_poll_t *pidpoll;
	uv_timer_t *restart;
	unsigned restarts;
	/* nft */
	uv_process_t *nft;
	bool nft_down;          /* the running nft deletes the table */
	/* leases */
	uv_fs_event_t *watch;
	bool reading, reread;
	struct lease *leases;
	size_t nleases;
	bool closing;
};

struct sv_netmgr {
	uv_loop_t *loop;
	char *run_dir, *net_dir;
	struct sv_net **nets;
	size_t n;
	size_t jobs;            /* in the thread pool */
	bool freeing;
};

/* netmgr.c */
void nm_close_free(uv_handle_t *h);
void nm_call_waiters(struct sv_net *n, int rc, const char *msg);
int nm_queue_job(struct sv_net *n, int kind, int pid, uv_work_cb work, uv_after_work_cb after);
bool nm_job_back(struct net_job *j);
void nm_fail(struct sv_net *n, int rc, const char *msg);
void nm_down_after_dnsmasq(struct sv_net *n);

/* net_dnsmasq.c: spawn n's dnsmasq (the network is up once it runs);
 * at load, adopt the dnsmasq an earlier qsupd left (*restart: the
 * network must come up again instead); start reading n's leases. */
void nm_spawn_dnsmasq(struct sv_net *n);
void nm_adopt_dnsmasq(struct sv_net *n, bool *restart);
void nm_leases_read(struct sv_net *n);

#endif
