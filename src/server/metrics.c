/*
 * metrics.c - the /metrics endpoint on libmicrohttpd (one internal thread,
 * bounded connections, short timeouts).
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

struct kt_metrics_server {
	struct MHD_Daemon *d;
	kt_metrics_render_fn render;
	void *ctx;
};

#if MHD_VERSION < 0x00097002
typedef int kt_mhd_result;
#else
typedef enum MHD_Result kt_mhd_result;
#endif

static kt_mhd_result reply(struct MHD_Connection *c, unsigned code, const char *type,
                           const char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body,
	                                                         MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	kt_mhd_result ok = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ok;
}

static kt_mhd_result handle(void *cls, struct MHD_Connection *c, const char *url,
                            const char *method, const char *version, const char *upload,
                            size_t *upload_size, void **state)
{
	(void)version;
	(void)upload;
	kt_metrics_server *s = cls;
	if (!*state) {          /* first call: headers only */
		*state = s;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;   /* no request bodies here: drop them */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", "not found: try /metrics\n", 24);
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n", 9);
	kt_buf out;
	kt_buf_init(&out, 1 << 20);
	s->render(s->ctx, &out);
	kt_mhd_result ok = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
	                         out.data, out.len);
	kt_buf_release(&out);
	return ok;
}

kt_code kt_metrics_server_start(kt_metrics_server **out, const char *addr,
                                kt_metrics_render_fn render, void *ctx, kt_error *err)
{
	const char *colon = strrchr(addr, ':');
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : -1;
	if (!colon || *end || port < 1 || port > 65535)
		return kt_error_set(err, KT_EUSAGE, "metrics address '%s' must be HOST:PORT or :PORT",
		                    addr);
	char host[64];
	size_t hl = (size_t)(colon - addr);
	if (hl >= sizeof(host))
		return kt_error_set(err, KT_EUSAGE, "metrics address '%s': host too long", addr);
	memcpy(host, addr, hl);
	host[hl] = '\0';
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			return kt_error_set(err, KT_EUSAGE, "metrics address '%s': bad IPv6 address", addr);
		flags |= MHD_USE_IPv6;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		if (host[0] && inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return kt_error_set(err, KT_EUSAGE, "metrics address '%s': host must be an IP "
			                    "address", addr);
		if (!host[0])
			a4->sin_addr.s_addr = htonl(INADDR_ANY);
	}
	kt_metrics_server *s = kt_xcalloc(1, sizeof(*s));
	s->render = render;
	s->ctx = ctx;
	s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, s,
	                        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	                        MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
	                        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	                        MHD_OPTION_END);
	if (!s->d) {
		free(s);
		return kt_error_set(err, KT_EIO, "cannot listen on %s for metrics (port in use?)", addr);
	}
	*out = s;
	return KT_OK;
}

void kt_metrics_server_stop(kt_metrics_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->d);
	free(s);
}
