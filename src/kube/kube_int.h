/*
 * kube_int.h - what the files of src/kube share (and the unit tests see):
 * the client struct, the request core every verb goes through, and small
 * helpers.  Never included by other layers.
 */
#ifndef KT_KUBE_INT_H
#define KT_KUBE_INT_H

#include "../http/http.h"
#include "kube.h"

#define KUBE_N_PEM 5 /* CA, client cert, client key (config); cert, key (exec plugin) */

struct kt_kube {
	kt_kube_config cfg;   /* deep copy of the caller's */
	kt_kube_opts opts;
	kt_http *http;
	char *token;          /* current bearer token or NULL */
	int pem_fd[KUBE_N_PEM];    /* memory files holding inline PEM, or -1 */
	char *pem_tmp[KUBE_N_PEM]; /* fallback temp files to unlink, or NULL */
	char *pem_path[KUBE_N_PEM]; /* what kt_http was given, or NULL */
	char origin[256];

	/* exec plugin credential (exec.c) */
	int exec_have;        /* a credential from the plugin is in use */
	int64_t exec_expiry_ms; /* when it expires (unix ms); INT64_MAX: no expiry given */
	unsigned n_exec_runs;

	/* discovery cache (discovery.c) */
	int disc_done;
	json_t *disc_docs;    /* the answers the strings below point into */
	kt_kube_resource *res;
	size_t n_res;
};

/*
 * One request through kube_do.  verb NULL means the raw form of
 * kt_kube_get (messages "kube-apiserver ORIGIN: GET PATH: ..."); else
 * messages are "cannot VERB RESOURCE "NAME" in namespace "NS": ...".
 */
typedef struct kube_call {
	const char *verb;           /* "get", "list", "create", ... or NULL */
	const kt_kube_target *t;    /* names the object in messages; may be NULL */
	const char *method;         /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	const char *path;           /* absolute API path, query included */
	const char *accept;         /* Accept header value; NULL = application/json */
	const char *content_type;   /* of body, or NULL */
	const char *body;
	size_t body_len;
	int idempotent;             /* retry after 5xx and connection failures */
	size_t max_body;            /* collected body limit; 0 = opts.max_response */
	/* Streaming (watch): a 2xx body goes to stream instead of being
	 * collected; *streamed must become non-zero once anything was handed
	 * to the caller (no retry after that). */
	kt_http_body_fn stream;
	void *stream_ctx;
	const int *streamed;
	int64_t timeout_ms;         /* 0 = opts.timeout_ms */
} kube_call;

/*
 * Perform k with retries (kube.h: "Requests are retried"), credentials
 * (token, exec plugin, re-read/re-run once after a 401) and the status ->
 * code mapping.  On success (2xx) *out (if out is not NULL and the call is
 * not streaming) holds the decoded JSON object; an empty body gives an
 * empty object.  *status_out (may be NULL) gets the final status.
 */
kt_code kube_do(kt_kube *c, const kube_call *k, json_t **out, long *status_out, kt_error *err);

/* The API path of t ("/api/v1/namespaces/ns/configmaps[/name]") into b,
 * checking every part first (KT_EUSAGE naming the bad one). */
kt_code kube_target_path(const kt_kube_target *t, int with_name, kt_buf *b, kt_error *err);

/* Append "?"/"&" name=value (percent-encoded) to b. */
void kube_query_add(kt_buf *b, const char *name, const char *value);

/* Make (or remake, after an exec plugin changed the client certificate)
 * the kt_http handle from c->pem_path. */
kt_code kube_http_setup(kt_kube *c, kt_error *err);

/* Put PEM bytes where libcurl can open them by path: c->pem_path[slot]. */
kt_code kube_pem_to_path(kt_kube *c, int slot, const char *pem, size_t len, const char *what,
                         kt_error *err);
/* Close and forget slot's memory file / temp file and path. */
void kube_pem_clear(kt_kube *c, int slot);

/* exec.c: make sure a plugin credential is current (run the plugin when
 * there is none, it expired, or force is set).  No-op without exec. */
kt_code kube_exec_ensure(kt_kube *c, int force, kt_error *err);


/*
 * Read a regular file of at most max bytes into b (which must be
 * initialised).  what names it in messages ("kubeconfig", "token file").
 * KT_ENOTFOUND, KT_EPERM, KT_EIO, KT_ELIMIT; refuses FIFOs and devices.
 */
kt_code kube_read_file(const char *path, size_t max, const char *what, kt_buf *b,
                       kt_error *err);

/* Zero n bytes at p in a way the compiler keeps, then free(p). */
void kube_wipe_free(void *p, size_t n);

/* Trim blanks and line breaks at both ends of a token in place; return 0 if
 * what remains is a usable bearer token (non-empty, printable ASCII without
 * blanks), else -1. */
int kube_token_clean(char *s);

/* Free an exec plugin config (env values wiped).  NULL is a no-op. */
void kube_exec_free(kt_kube_exec *x);

/* Parse an RFC 3339 UTC/offset timestamp into unix ms; -1 if malformed. */
int64_t kube_parse_time(const char *s);

/* Wall-clock time, unix ms (kt_now_ms is monotonic: not for expiry times). */
int64_t kube_wall_ms(void);

#endif
