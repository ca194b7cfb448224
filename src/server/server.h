/*
 * server.h - HTTP endpoints served by long-running front ends (the agent's
 * /metrics today; the daemon's API and dashboard later), on libmicrohttpd.
 *
 * The request parsing is libmicrohttpd's; we only route GET /metrics and
 * answer everything else with 404/405.  Bodies are produced on demand by a
 * caller's render function, called on libmicrohttpd's thread.
 */
#ifndef KT_SERVER_H
#define KT_SERVER_H

#include "core/core.h"

/* Append the current Prometheus text to out (called per request). */
typedef void (*kt_metrics_render_fn)(void *ctx, kt_buf *out);

typedef struct kt_metrics_server kt_metrics_server;

/*
 * Listen on addr ("127.0.0.1:9464", ":9464" for all addresses, "[::1]:9464")
 * and serve GET /metrics.  KT_EUSAGE for a bad address, KT_EIO when the port
 * cannot be bound (message names it).  Stop with kt_metrics_server_stop.
 */
kt_code kt_metrics_server_start(kt_metrics_server **out, const char *addr,
                                kt_metrics_render_fn render, void *ctx, kt_error *err);
void kt_metrics_server_stop(kt_metrics_server *s);

#endif /* KT_SERVER_H */
