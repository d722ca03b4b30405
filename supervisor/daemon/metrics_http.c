/* /metrics over HTTP through libmicrohttpd (metrics_http.h). */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>

#include "metrics_http.h"
#include "util.h"

/* One published text, shared by the responses that send it. */
struct snap {
	atomic_uint refs;
	size_t len;
	char *text;
};

struct sv_http {
	struct MHD_Daemon *mhd;
	pthread_mutex_t lock;
	struct snap *cur;       /* under lock */
	unsigned port;
};

/* libmicrohttpd, loaded when --metrics-listen asks for it: linked, it
 * would bring GnuTLS and eight more libraries into every start of qsupd
 * (1.5 ms of dynamic loading here, before the first guest is re-adopted).
 * Debian's libmicrohttpd12; the package depends on it. */
#define MHD_SONAME "libmicrohttpd.so.12"

static struct {
	bool loaded;
	__typeof__(MHD_start_daemon) *start_daemon;
	__typeof__(MHD_stop_daemon) *stop_daemon;
	__typeof__(MHD_get_daemon_info) *get_daemon_info;
	__typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
	__typeof__(MHD_create_response_from_buffer_with_free_callback_cls)
		*create_response_from_buffer_with_free_callback_cls;
	__typeof__(MHD_add_response_header) *add_response_header;
	__typeof__(MHD_queue_response) *queue_response;
	__typeof__(MHD_destroy_response) *destroy_response;
} mhd;

static int mhd_load(struct sv_error *err)
{
	if (mhd.loaded)
		return 0;
	void *h = dlopen(MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return sv_error_set(err, -ENOENT, "--metrics-listen: cannot load %s (%s); "
		                    "install libmicrohttpd12", MHD_SONAME, dlerror());
	/* Through a void ** (POSIX's way): ISO C has no cast from an object
	 * pointer to a function pointer. */
#define MHD_SYM(f) \
	if (!(*(void **)&mhd.f = dlsym(h, "MHD_" #f))) \
		return sv_error_set(err, -ENOENT, "--metrics-listen: %s has no MHD_%s", \
		                    MHD_SONAME, #f)
	MHD_SYM(start_daemon);
	MHD_SYM(stop_daemon);
	MHD_SYM(get_daemon_info);
	MHD_SYM(create_response_from_buffer);
	MHD_SYM(create_response_from_buffer_with_free_callback_cls);
	MHD_SYM(add_response_header);
	MHD_SYM(queue_response);
	MHD_SYM(destroy_response);
#undef MHD_SYM
	mhd.loaded = true;   /* never unloaded: its thread may run until exit */
	return 0;
}

static void snap_unref(void *arg)
{
	struct snap *s = arg;
	if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
		free(s->text);
		free(s);
	}
}

int sv_http_parse_listen(const char *s, struct sockaddr_storage *ss, struct sv_error *err)
{
	char host[64] = "127.0.0.1";
	const char *port = s;
	const char *colon = strrchr(s, ':');
	memset(ss, 0, sizeof(*ss));
	if (colon) {
		size_t n = (size_t)(colon - s);
		if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
			s++;
			n -= 2;
		}
		if (n >= sizeof(host))
			return sv_error_set(err, -EINVAL, "--metrics-listen: '%s' is no ADDR:PORT", s);
		if (n) {
			memcpy(host, s, n);
			host[n] = '\0';
		}
		port = colon + 1;
	}
	char *end;
	unsigned long p = strtoul(port, &end, 10);
	if (!*port || *end || port[0] < '0' || port[0] > '9' || p > 65535)
		return sv_error_set(err, -EINVAL, "--metrics-listen: '%s': the port must be a "
		                    "number from 0 to 65535", port);
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)p);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)p);
	} else {
		return sv_error_set(err, -EINVAL, "--metrics-listen: '%s' is not an IPv4 or "
		                    "IPv6 address (ADDR:PORT, [ADDR6]:PORT)", host);
	}
	return 0;
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned code,
                                   const char *text)
{
	struct MHD_Response *r = mhd.create_response_from_buffer(strlen(text), (void *)text,
	                                                         MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	mhd.add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	enum MHD_Result ret = mhd.queue_response(conn, code, r);
	mhd.destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **ctx)
{
	struct sv_http *h = cls;
	(void)version, (void)upload, (void)ctx;
	if (*upload_size)
		return MHD_NO;   /* a GET has no body */
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics\n");
	if (strcmp(url, "/metrics"))
		return answer_text(conn, MHD_HTTP_NOT_FOUND, "qsupd serves /metrics only\n");
	pthread_mutex_lock(&h->lock);
	struct snap *s = h->cur;
	if (s)
		atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&h->lock);
	if (!s)
		return answer_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no metrics yet\n");
	struct MHD_Response *r = mhd.create_response_from_buffer_with_free_callback_cls(
		s->len, s->text, snap_unref, s);
	if (!r) {
		snap_unref(s);
		return MHD_NO;
	}
	mhd.add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	enum MHD_Result ret = mhd.queue_response(conn, MHD_HTTP_OK, r);
	mhd.destroy_response(r);
	return ret;
}

struct sv_http *sv_http_start(const struct sockaddr_storage *ss, const char *what,
                              struct sv_error *err)
{
	if (mhd_load(err) < 0)
		return NULL;
	struct sv_http *h = calloc(1, sizeof(*h));
	if (!h) {
		sv_error_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&h->lock, NULL);
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD;
	if (ss->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The server's thread takes no signal: the loop's handlers get them. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	h->mhd = mhd.start_daemon(flags, 0, NULL, NULL, on_request, h,
	                          MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss,
	                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)SV_HTTP_MAX_CONN,
	                          MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)SV_HTTP_PER_IP,
	                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SV_HTTP_TIMEOUT_S,
	                          MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	                          (size_t)SV_HTTP_CONN_MEMORY,
	                          MHD_OPTION_END);
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!h->mhd) {
		sv_error_set(err, -(e ? e : EADDRINUSE), "--metrics-listen %s: cannot listen "
		             "(%s)", what, strerror(e ? e : EADDRINUSE));
		pthread_mutex_destroy(&h->lock);
		free(h);
		return NULL;
	}
	const union MHD_DaemonInfo *di = mhd.get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : 0;
	return h;
}

unsigned sv_http_port(const struct sv_http *h)
{
	return h ? h->port : 0;
}

void sv_http_publish(struct sv_http *h, char *text, size_t len)
{
	struct snap *s = text ? calloc(1, sizeof(*s)) : NULL;
	if (!s) {
		free(text);
		return;   /* the last one stays */
	}
	atomic_init(&s->refs, 1);
	s->text = text;
	s->len = len;
	pthread_mutex_lock(&h->lock);
	struct snap *old = h->cur;
	h->cur = s;
	pthread_mutex_unlock(&h->lock);
	snap_unref(old);
}

void sv_http_stop(struct sv_http *h)
{
	if (!h)
		return;
	mhd.stop_daemon(h->mhd);
	snap_unref(h->cur);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
