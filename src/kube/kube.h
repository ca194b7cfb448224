/*
 * kube.h - the Kubernetes REST client: where the API server is and how to
 * prove who we are (kubeconfig files merged as kubectl merges them, exec
 * credential plugins, the in-cluster service account), discovery, and the
 * verbs: get, paged list, create, update, merge/JSON patch, server-side
 * apply, delete, watch.
 *
 * Owns: bounded kubeconfig parsing (libyaml document API), the lookup
 * order, context selection, the auth forms we support (client certificate
 * and key as file or inline data, bearer token inline or from a file, exec
 * plugins), in-cluster config, retries with backoff, the HTTP status ->
 * kt_code mapping with the API server's Status message, and a few typed
 * helpers (Secret data, namespace UID).
 *
 * Invariants:
 *   1. TLS verification is never disabled: a kubeconfig that asks for
 *      insecure-skip-tls-verify is refused, not obeyed.
 *   2. A bearer token is registered with kt_log_add_secret as soon as it is
 *      read and never appears in an error message; it travels only in the
 *      Authorization header, and never over plain http://.
 *   3. Parsing never reads other files: paths in a kubeconfig (CA, client
 *      certificate/key, tokenFile) are resolved against the kubeconfig's
 *      directory and used when a client is created.  So the parser is safe
 *      to fuzz from memory.
 *   4. Every input is bounded: kubeconfig size and nesting depth, token
 *      file size, exec plugin output, response size, list page size, watch
 *      event size.  Memory does not grow with the size of a list or the
 *      length of a watch.
 *   5. Error messages name the source and the field, e.g.
 *      "kubeconfig '/etc/kubernetes/admin.conf': users[0].user.client-key-data
 *      is not valid base64".
 *
 * Supported and refused kubeconfig features: docs/kube-client.md.
 */
#ifndef KT_KUBE_H
#define KT_KUBE_H

#include <signal.h>
#include <jansson.h>

#include "../core/core.h"

#define KT_KUBE_MAX_CONFIG (4u << 20)       /* kubeconfig file size */
#define KT_KUBE_MAX_DEPTH 64                /* YAML nesting depth */
#define KT_KUBE_MAX_TOKEN (64u << 10)       /* token or token file */
#define KT_KUBE_MAX_RESPONSE (16u << 20)    /* default response body limit */
#define KT_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* ------------------------------------------------------------------ */
/* Configuration: where the server is and which credentials to present.
 * All strings are owned by the struct (kt_kube_config_release frees them).
 * For each of CA, client certificate and client key at most one of the
 * file path or the inline PEM is set. */

typedef struct kt_kube_config {
	char *source;      /* for messages: "kubeconfig '/path'" or "in-cluster config" */
	char *server;      /* "https://host:port[/prefix]", no trailing slash */
	char *context;     /* the context used; NULL for in-cluster */
	char *cluster;     /* cluster name (kubeconfig) or NULL */
	char *user;        /* user name (kubeconfig) or NULL */
	char *namespace;   /* the context's namespace, else "default" */

	char *ca_file;     /* absolute or relative to the cwd */
	char *ca_pem;      /* decoded certificate-authority-data */
	size_t ca_pem_len;
	char *cert_file;
	char *cert_pem;
	size_t cert_pem_len;
	char *key_file;
	char *key_pem;     /* zeroed before it is freed */
	size_t key_pem_len;

	char *token;       /* inline bearer token (registered secret), or NULL */
	char *token_file;  /* read when a client is created (and re-read on 401) */
	struct kt_kube_exec *exec; /* users[].user.exec credential plugin, or NULL */
} kt_kube_config;

/*
 * An exec credential plugin (users[].user.exec), run by the client when it
 * needs a credential: before the first request, when the cached one
 * expires (status.expirationTimestamp) and once after a 401.  The plugin
 * prints an ExecCredential (client.authentication.k8s.io/v1 or v1beta1)
 * with status.token and/or status.clientCertificateData + clientKeyData
 * (PEM).  It gets our environment plus env, and KUBERNETES_EXEC_INFO (spec
 * with interactive: false, and the cluster's server and CA data when
 * provide_cluster_info is set); stdin is /dev/null, its stderr is ours.
 */
typedef struct kt_kube_exec {
	char *api_version;   /* "client.authentication.k8s.io/v1" or ".../v1beta1" */
	char *command;       /* a name looked up on PATH, or a path (relative ones
	                        containing '/' are resolved against the kubeconfig's dir) */
	char **args;         /* n_args strings */
	size_t n_args;
	char **env;          /* "NAME=VALUE", n_env strings */
	size_t n_env;
	char *install_hint;  /* shown when the command cannot be run, or NULL */
	int provide_cluster_info;
} kt_kube_exec;

/* Zero cfg. */
void kt_kube_config_init(kt_kube_config *cfg);
/* Free the contents (secret material is zeroed first); cfg is left zeroed. */
void kt_kube_config_release(kt_kube_config *cfg);

/*
 * Parse a kubeconfig held in memory.
 *   name      the file name used in messages ("kubeconfig 'NAME': ...")
 *   base_dir  directory against which relative paths in the file are
 *             resolved (NULL: leave them relative)
 *   context   the context to use, or NULL for current-context
 * On success *out holds the config (caller releases it).  On failure *out is
 * left zeroed and err names the field: KT_EUSAGE for malformed or missing
 * fields, refused and unsupported features (auth-provider, basic
 * auth, insecure-skip-tls-verify...), KT_ENOTFOUND for an unknown context,
 * cluster or user, KT_ELIMIT for size and depth limits.
 */
kt_code kt_kube_config_parse(kt_kube_config *out, const char *data, size_t len,
                             const char *name, const char *base_dir, const char *context,
                             kt_error *err);

/* Read the kubeconfig at path (at most KT_KUBE_MAX_CONFIG bytes) and parse
 * it as above, relative paths against its directory.  KT_ENOTFOUND if the
 * file does not exist, KT_EPERM/KT_EIO if it cannot be read. */
kt_code kt_kube_config_load(kt_kube_config *out, const char *path, const char *context,
                            kt_error *err);

/* One kubeconfig file held in memory, for kt_kube_config_parse_files. */
typedef struct kt_kube_file {
	const char *name;      /* for messages */
	const char *base_dir;  /* relative paths in this file resolve here; NULL: left relative */
	const char *data;
	size_t len;
} kt_kube_file;

/*
 * Parse several kubeconfigs merged as kubectl merges $KUBECONFIG: the
 * first file that sets current-context decides it; a context, cluster or
 * user is taken whole from the first file that defines that name (later
 * definitions are ignored, not merged field by field); paths in an entry
 * resolve against the directory of the file it came from.  Every file must
 * parse (size, depth, one document) even if none of its entries is used.
 * Messages name the file that holds the field.  n must be >= 1.
 */
kt_code kt_kube_config_parse_files(kt_kube_config *out, const kt_kube_file *files, size_t n,
                                   const char *context, kt_error *err);

/* Read the files in paths[0..n) (missing ones are skipped, as kubectl skips
 * them; at least one must exist: else KT_ENOTFOUND) and merge them as
 * above.  source becomes "kubeconfig 'A:B'" (the files used). */
kt_code kt_kube_config_load_files(kt_kube_config *out, const char *const *paths, size_t n,
                                  const char *context, kt_error *err);

/*
 * Find the config the way kubectl does, then fall back to in-cluster:
 *   1. kubeconfig (non-NULL, non-empty: --kubeconfig FILE): that file only;
 *   2. else $KUBECONFIG when non-empty: its ':'-separated files, merged;
 *   3. else $HOME/.kube/config if it exists;
 *   4. else the in-cluster service account (KUBERNETES_SERVICE_HOST set);
 *      context must then be NULL (KT_EUSAGE otherwise).
 * KT_ENOTFOUND naming every place looked at when none applies.
 */
kt_code kt_kube_config_resolve(kt_kube_config *out, const char *kubeconfig, const char *context,
                               kt_error *err);

/*
 * The config a pod gets: server from KUBERNETES_SERVICE_HOST and
 * KUBERNETES_SERVICE_PORT, token file DIR/token, CA DIR/ca.crt and
 * namespace from DIR/namespace (if present), DIR defaulting to
 * KT_KUBE_SA_DIR.  KT_ENOTFOUND when the variables are unset or DIR/token
 * does not exist (not in a pod).  The files are read when a client is made.
 */
kt_code kt_kube_config_in_cluster(kt_kube_config *out, const char *dir, kt_error *err);

/* ------------------------------------------------------------------ */
/* Client */

typedef struct kt_kube_opts {
	int64_t timeout_ms;          /* per request; 0 = 30 s */
	int64_t connect_timeout_ms;  /* 0 = 10 s */
	size_t max_response;         /* body limit; 0 = KT_KUBE_MAX_RESPONSE */
	volatile sig_atomic_t *cancel; /* non-zero: stop with KT_ECANCELED */
} kt_kube_opts;

typedef struct kt_kube kt_kube; /* opaque: one API server, one connection */

/*
 * Make a client for cfg (copied; cfg may be released afterwards).  Reads
 * the token file (bounded, surrounding blanks trimmed) and checks that
 * referenced CA/certificate/key files are readable, so a bad path fails
 * here with the field named rather than as a TLS error later.  Inline PEM
 * is handed to libcurl through an anonymous in-memory file.  opts may be
 * NULL.  *out untouched on failure; free with kt_kube_client_free.
 */
kt_code kt_kube_client_new(kt_kube **out, const kt_kube_config *cfg, const kt_kube_opts *opts,
                           kt_error *err);

/* Close the connection, wipe the credentials, free c.  NULL is a no-op. */
void kt_kube_client_free(kt_kube *c);

/* The config the client was made from (borrowed). */
const kt_kube_config *kt_kube_client_config(const kt_kube *c);

/*
 * GET path (e.g. "/api/v1/namespaces/kube-system": must start with '/',
 * printable ASCII without blanks) and decode the JSON body into *out
 * (caller owns; json_decref).  Errors, with the API server's Status
 * message quoted when it sent one:
 *   KT_EAUTH       401 or 403 (err->status holds it)
 *   KT_ENOTFOUND   404
 *   KT_ETRANSIENT  429, 5xx, 408, timeouts, connection failures
 *   KT_EREMOTE     any other non-2xx status
 *   KT_EPROTO      a 2xx body that is not a JSON object
 *   KT_ELIMIT      the body exceeds opts.max_response
 *   KT_ETLS, KT_ECANCELED, ... from the transport.
 * *out is untouched on failure.
 */
kt_code kt_kube_get(kt_kube *c, const char *path, json_t **out, kt_error *err);

/* ------------------------------------------------------------------ */
/* Discovery (discovery.c): every group, version and resource the server
 * serves, read once per client (the aggregated documents at /api and /apis,
 * else /api/VERSION and /apis/GROUP/VERSION) and kept until the client is
 * freed.  Subresources (pods/log, deployments/scale...) are skipped. */

enum {
	KT_KUBE_VERB_GET = 1u << 0,
	KT_KUBE_VERB_LIST = 1u << 1,
	KT_KUBE_VERB_WATCH = 1u << 2,
	KT_KUBE_VERB_CREATE = 1u << 3,
	KT_KUBE_VERB_UPDATE = 1u << 4,
	KT_KUBE_VERB_PATCH = 1u << 5,
	KT_KUBE_VERB_DELETE = 1u << 6,
	KT_KUBE_VERB_DELETECOLLECTION = 1u << 7,
};

typedef struct kt_kube_resource {
	const char *group;     /* "" for the core group */
	const char *version;   /* "v1" */
	const char *resource;  /* plural, lowercase: "configmaps" */
	const char *kind;      /* "ConfigMap" */
	int namespaced;
	int preferred;         /* version is the group's preferred version */
	unsigned verbs;        /* KT_KUBE_VERB_* */
} kt_kube_resource;

/*
 * Discover (first call) or return the cached list: *out and *n_out are
 * borrowed from c and live until kt_kube_client_free.  Errors as for
 * kt_kube_get; a group version whose list fails with 503 or that is
 * marked Stale (an aggregated API that is down, e.g. metrics) is skipped,
 * as kubectl skips it.
 */
kt_code kt_kube_discover(kt_kube *c, const kt_kube_resource **out, size_t *n_out,
                         kt_error *err);

/* Drop the cached discovery (a CRD was just created): the next lookup asks
 * the server again.  Pointers from earlier kt_kube_discover or
 * kt_kube_resource_find calls become invalid. */
void kt_kube_discovery_forget(kt_kube *c);

/*
 * Find a resource by plural name, singular-ish kind or "resource.group"
 * ("configmaps", "ConfigMap", "deployments.apps", "Deployment.apps"),
 * case-insensitive for kinds; among several versions the preferred one.
 * *out is borrowed from c.  KT_ENOTFOUND naming what was looked for.
 */
kt_code kt_kube_resource_find(kt_kube *c, const char *what, const kt_kube_resource **out,
                              kt_error *err);

/* ------------------------------------------------------------------ */
/* Verbs (verbs.c, list in list.c, watch in watch.c).  Every call names an
 * object or collection with a kt_kube_target; errors name the verb, the
 * resource, the object and the namespace:
 *   cannot create configmaps "x" in namespace "ns": 403 (Forbidden): ...
 * and map 401/403 -> KT_EAUTH (with whose credentials), 404 ->
 * KT_ENOTFOUND, 409 -> KT_EEXIST (AlreadyExists; Conflict says to read the
 * object again), 400/422 -> KT_EUSAGE, 410 -> KT_EREMOTE with status 410
 * (an expired list continue token or watch resourceVersion), 408/429/5xx
 * -> KT_ETRANSIENT.  Requests are retried with backoff (at most 5
 * attempts, Retry-After honoured up to 30 s) after 429 for every verb, and
 * after 5xx and connection failures for the idempotent ones (get, list,
 * watch start, update, apply, delete). */

typedef struct kt_kube_target {
	const char *group;     /* NULL or "" = core */
	const char *version;   /* required: "v1" */
	const char *resource;  /* required: plural, lowercase */
	const char *namespace; /* NULL: cluster-scoped object, or every namespace (list/watch) */
	const char *name;      /* the object; NULL for list, watch and create */
	const char *subresource; /* "status" (get/update/patch of .../NAME/status), or NULL */
} kt_kube_target;

/* Fill t from a discovered resource (pointers borrowed from r). */
void kt_kube_target_of(kt_kube_target *t, const kt_kube_resource *r, const char *ns,
                       const char *name);

/* GET one object into *out (caller decrefs). */
kt_code kt_kube_get_object(kt_kube *c, const kt_kube_target *t, json_t **out, kt_error *err);

/* POST obj to the collection; *out (may be NULL: not returned) gets the
 * created object.  Not retried after a 5xx (it may have been created). */
kt_code kt_kube_create(kt_kube *c, const kt_kube_target *t, json_t *obj, json_t **out,
                       kt_error *err);

/* PUT obj as the new state of t->name.  With metadata.resourceVersion set
 * a concurrent change gives KT_EEXIST (409 Conflict): read again, retry. */
kt_code kt_kube_update(kt_kube *c, const kt_kube_target *t, json_t *obj, json_t **out,
                       kt_error *err);

typedef enum kt_kube_patch_type {
	KT_KUBE_PATCH_MERGE = 0, /* application/merge-patch+json (RFC 7386) */
	KT_KUBE_PATCH_JSON = 1,  /* application/json-patch+json (RFC 6902) */
	KT_KUBE_PATCH_APPLY = 2, /* server-side apply: application/apply-patch+yaml */
} kt_kube_patch_type;

typedef struct kt_kube_patch_opts {
	const char *field_manager; /* required for APPLY; default "kontinuity" */
	int force;                 /* APPLY: take over conflicting fields */
} kt_kube_patch_opts;

/* PATCH t->name with body[0..len) (JSON; for APPLY JSON or YAML holding the
 * full intent with apiVersion/kind/metadata.name).  o may be NULL. */
kt_code kt_kube_patch(kt_kube *c, const kt_kube_target *t, kt_kube_patch_type type,
                      const char *body, size_t len, const kt_kube_patch_opts *o, json_t **out,
                      kt_error *err);

typedef struct kt_kube_delete_opts {
	const char *propagation;   /* NULL (server default), "Foreground", "Background", "Orphan" */
	const char *uid;           /* precondition: delete only this incarnation */
	const char *resource_version; /* precondition: only if unchanged */
} kt_kube_delete_opts;

/* DELETE t->name.  A failed precondition is KT_EEXIST (409).  o may be NULL. */
kt_code kt_kube_delete(kt_kube *c, const kt_kube_target *t, const kt_kube_delete_opts *o,
                       kt_error *err);

/* Called once per object; obj is borrowed for the call.  Return non-OK
 * (err filled) to stop: that code is what list/watch returns. */
typedef kt_code (*kt_kube_object_fn)(void *ctx, json_t *obj, kt_error *err);

typedef struct kt_kube_list_opts {
	const char *label_selector;
	const char *field_selector;
	unsigned limit;            /* objects per page; 0 = 500 */
	size_t max_page;           /* bytes per page; 0 = the client's max_response */
} kt_kube_list_opts;

typedef struct kt_kube_list_result {
	uint64_t n_items;
	unsigned n_pages;
	char resource_version[128]; /* of the list: start a watch from here */
} kt_kube_list_result;

/*
 * List a collection page by page (limit/continue): each page is read (at
 * most max_page bytes: a bigger page is KT_ELIMIT saying to lower the
 * limit), then fn is called for each item in order, then the page is
 * freed, so memory holds one page whatever the collection size.  Items
 * get "apiVersion" and "kind" filled in (the server leaves them out of
 * list items).  An expired continue token (410 Gone, the list took longer
 * than the server keeps a snapshot) is KT_EREMOTE with status 410 and a
 * message saying to list again.  res and o may be NULL.
 */
kt_code kt_kube_list(kt_kube *c, const kt_kube_target *t, const kt_kube_list_opts *o,
                     kt_kube_object_fn fn, void *ctx, kt_kube_list_result *res, kt_error *err);

/* A watch event: type is "ADDED", "MODIFIED", "DELETED" or "BOOKMARK";
 * obj is borrowed for the call.  Set *stop to end the watch (KT_OK). */
typedef kt_code (*kt_kube_event_fn)(void *ctx, const char *type, json_t *obj, int *stop,
                                    kt_error *err);

typedef struct kt_kube_watch_opts {
	const char *resource_version; /* start after this (from a list); NULL = now, with
	                                 synthetic ADDED events for what exists */
	const char *label_selector;
	const char *field_selector;
	int bookmarks;                /* ask for BOOKMARK events */
	unsigned timeout_s;           /* server ends the watch after this; 0 = 300 */
	size_t max_event;             /* bytes per event; 0 = the client's max_response */
} kt_kube_watch_opts;

/*
 * Watch a collection: events are read from the stream one at a time (each
 * bounded by max_event, KT_ELIMIT past it) and handed to fn.  Returns
 * KT_OK when the server ends the watch (timeout) or fn sets *stop; an
 * ERROR event becomes an error (410 Gone: "resourceVersion too old, list
 * again", KT_EREMOTE with status 410).  *last_rv (if not NULL, at least
 * 128 bytes) gets the last resourceVersion seen, to resume from.
 */
kt_code kt_kube_watch(kt_kube *c, const kt_kube_target *t, const kt_kube_watch_opts *o,
                      kt_kube_event_fn fn, void *ctx, char *last_rv, kt_error *err);

/* One entry of a Secret's data, base64-decoded.  value is NUL-terminated
 * (the NUL is not counted in len) so text values can be used directly. */
typedef struct kt_kube_secret_item {
	char *key;
	char *value;
	size_t len;
} kt_kube_secret_item;

typedef struct kt_kube_secret {
	char *namespace;
	char *name;
	char *type;            /* e.g. "Opaque"; "" if absent */
	size_t n_items;
	kt_kube_secret_item *items; /* in the order the server sent them */
} kt_kube_secret;

/*
 * GET the Secret ns/name and decode its data map.  Names are checked
 * (DNS-1123) before any request.  KT_EPROTO when a value is not valid
 * base64 or not a string.  *out (caller frees with kt_kube_secret_free) is
 * untouched on failure.  Values are not registered as log secrets: the
 * caller knows which ones are.
 */
kt_code kt_kube_get_secret(kt_kube *c, const char *ns, const char *name,
                           kt_kube_secret **out, kt_error *err);

/* The item named key, or NULL (borrowed from s). */
const kt_kube_secret_item *kt_kube_secret_find(const kt_kube_secret *s, const char *key);

/* Wipe the values and free s.  NULL is a no-op. */
void kt_kube_secret_free(kt_kube_secret *s);

/* The metadata.uid of namespace ns into *out (caller frees).  Same errors
 * as kt_kube_get; KT_EPROTO if the object has no uid. */
kt_code kt_kube_namespace_uid(kt_kube *c, const char *ns, char **out, kt_error *err);

/* 1 if s is a valid DNS-1123 label (namespace name), else 0. */
int kt_kube_valid_label(const char *s);
/* 1 if s is a valid DNS-1123 subdomain (most object names), else 0. */
int kt_kube_valid_name(const char *s);

/* ------------------------------------------------------------------ */
/* Static pod manifests (src/kube/staticpod*.c): the etcd Pod that kubelet
 * runs from /etc/kubernetes/manifests/etcd.yaml on a kubeadm control-plane
 * node.  `etcd restore` reads the member's flags from it; `etcd recover`
 * writes a copy with flags changed (e.g. --force-new-cluster added).
 *
 * Accepted input: one YAML document (a second one is refused, because
 * kubelet would ignore it and a rewrite would drop it), kind: Pod with
 * apiVersion: v1, spec.containers a list of mappings.  Refused: YAML
 * aliases (*name; anchors alone are fine), merge keys (<<) and a key given
 * twice among the fields read (apiVersion, kind, spec, containers, and a
 * container's name, image, command, args); command/args entries that
 * Kubernetes would not read as strings (mappings, lists, null, plain
 * true/false/yes/no/on/off, plain numbers: quote them).  Other fields are
 * not read (a rewrite keeps them as they are).  Environment variables
 * (ETCD_NAME...) in the manifest are not read either.
 *
 * Every message starts "static pod manifest['PATH']: line L column C: "
 * (position from the parser where there is one) and names the field, e.g.
 * "spec.containers[0].command[3] is a mapping, not a string".  Codes:
 * KT_EPROTO for a manifest we do not accept (including "no container
 * 'etcd'" and "has no command"), KT_ELIMIT for the limits below, KT_EUSAGE
 * for malformed arguments of kt_kube_staticpod_rewrite, KT_ENOMEM.
 */

#define KT_KUBE_STATICPOD_MAX (1u << 20)       /* manifest size, bytes */
#define KT_KUBE_STATICPOD_MAX_ARGS 256         /* command + args entries */
#define KT_KUBE_STATICPOD_MAX_ARG (8u << 10)   /* one entry, bytes */
#define KT_KUBE_STATICPOD_MAX_CONTAINERS 64    /* entries of spec.containers */
/* Nesting depth is bounded by KT_KUBE_MAX_DEPTH.  The limits apply to
 * every container of the Pod, not only the one read. */

typedef struct kt_kube_staticpod {
	char *container;   /* the container read ("" if it has no name) */
	char *image;       /* its image, or NULL if the field is absent */
	char **argv;       /* command then args: n_argv strings, then NULL */
	size_t n_argv;
	size_t n_command;  /* argv[0..n_command) came from command, the rest from args */
	size_t first_flag; /* where flags start: 1 after command's program, 0 when only
	                      args is given (the image's entrypoint is the program) */
} kt_kube_staticpod;

/*
 * Parse the manifest in data[0..len) (need not be NUL-terminated) and read
 * the container named container; NULL or "" means "etcd", or the only
 * container when there is exactly one and none is called etcd.  Its
 * command then args become argv (at least one entry, else "container 'X'
 * has no command").  All strings are owned by *out (release with
 * kt_kube_staticpod_release).  On failure *out is zeroed.
 */
kt_code kt_kube_staticpod_parse(kt_kube_staticpod *out, const char *data, size_t len,
                                const char *container, kt_error *err);

/* Read the file at path (at most KT_KUBE_STATICPOD_MAX bytes) and parse it
 * as above; messages name the path.  KT_ENOTFOUND if it does not exist,
 * KT_EPERM/KT_EIO if it cannot be read, KT_EUSAGE if not a regular file. */
kt_code kt_kube_staticpod_load(kt_kube_staticpod *out, const char *path, const char *container,
                               kt_error *err);

/* Free the contents; p is left zeroed.  NULL and a zeroed struct are fine. */
void kt_kube_staticpod_release(kt_kube_staticpod *p);

/*
 * The value etcd reads for flag name ("data-dir"; leading dashes are
 * ignored), borrowed from p; NULL if the flag is not given.  Read as Go's
 * flag package does, from argv[first_flag]: "--f=v" and "-f=v"; "--f v"
 * (the next entry is the value unless it starts with '-'); a bare "--f"
 * of one of etcd's boolean flags (force-new-cluster, client-cert-auth...)
 * or with nothing after it reads "true"; "" is a possible value; the last
 * occurrence wins; "--" ends the flags; other entries are skipped.  (Go
 * would also take a value starting with '-' after a non-boolean flag:
 * write such values as --f=-v.)
 */
const char *kt_kube_staticpod_flag(const kt_kube_staticpod *p, const char *name);

/*
 * Append to out a copy of the manifest data[0..len) in which the container
 * chosen as in kt_kube_staticpod_parse has:
 *   - every flag named in remove taken out, in any form (with "--f value"
 *     both entries go).  An entry is a name ("initial-cluster-state",
 *     leading dashes ignored) or name=value, which removes only the
 *     occurrences with that value.  Removing an absent flag is no error.
 *   - the entries of add ("--force-new-cluster", "--initial-cluster-state=new",
 *     each one flag in one entry) appended last, so they win: at the end of
 *     args if args has entries, else at the end of command.
 * add and remove are NULL-terminated arrays; NULL means none.
 *
 * The rest of the document is kept as data, re-written by libyaml's
 * emitter from the parser's events: comments and the original layout are
 * lost; values keep their meaning and mostly their quoting (a value tagged
 * with the bare "!" comes out quoted instead, an empty plain one as ~;
 * non-ASCII is written as UTF-8, UTF-16 input as UTF-8).  The output is
 * checked before it is returned: parsed again it must give the expected
 * argv, each added flag must read with its value and no other flag may
 * change value; it is at most KT_KUBE_STATICPOD_MAX bytes with at most
 * KT_KUBE_STATICPOD_MAX_ARGS entries.  Errors as for parsing; KT_EUSAGE
 * for an add entry that is not "--name[=value]" or a remove entry that is
 * not a name; KT_EPROTO when an added flag would not be read (after a
 * "--") or when taking flags out would make a stray entry the value of
 * another flag ("--a x" left behind by a removal between them); out's own
 * limit (KT_ELIMIT).  On failure out is unchanged.  Rewriting the output
 * again with the same lists (remove naming the added flags) gives the
 * same bytes.
 */
kt_code kt_kube_staticpod_rewrite(const char *data, size_t len, const char *container,
                                  const char *const *add, const char *const *remove, kt_buf *out,
                                  kt_error *err);

#endif /* KT_KUBE_H */
