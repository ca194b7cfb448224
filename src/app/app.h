/*
 * app.h - application backup and restore (engine layer): which objects of a
 * namespace a restore point takes, how a restore cleans and maps them, and
 * in which order it applies them.  docs/app-backup.md is the contract; the
 * functions here are pure (objects in, objects out) so that every rule is
 * unit-tested and fuzzed without a cluster.
 */
#ifndef KT_APP_H
#define KT_APP_H

#include <jansson.h>

#include "core/core.h"
#include "kube/kube.h"

/* ---- capture rules (capture.c) -------------------------------------- */

/* Why a whole resource is not captured ("events" ...), or NULL to take it.
 * group "" is the core group; verbs is a space-separated list as discovery
 * reports it (e.g. "create delete get list patch update watch"). */
const char *kt_app_skip_resource(const char *group, const char *resource, const char *verbs);

/* Why one object of a taken resource is not captured (a Pod with a
 * controller owner, a service-account token Secret ...), or NULL. */
const char *kt_app_skip_object(const char *group, const char *resource, json_t *obj);

/* The verbs of a discovered resource as kt_app_skip_resource takes them. */
void kt_app_verbs_text(unsigned verbs, char out[96]);

/* ---- capture walk (collect.c) ---------------------------------------- */

typedef enum kt_app_note_kind {
	KT_APP_NOTE_SKIPPED_RESOURCE = 0, /* what = "events", why = the rule's reason */
	KT_APP_NOTE_SKIPPED_OBJECT,       /* what = "pods/web-0" */
	KT_APP_NOTE_FAILED,          /* what = "secrets" or "persistentvolumes/pv-1", why = error */
} kt_app_note_kind;

typedef void (*kt_app_note_fn)(void *ctx, kt_app_note_kind kind, const char *what,
                               const char *why);

/* One captured object: r names its resource (borrowed from the client's
 * discovery), obj is borrowed for the call (apiVersion and kind set). */
typedef kt_code (*kt_app_object_fn)(void *ctx, const kt_kube_resource *r, json_t *obj,
                                    kt_error *err);

typedef struct kt_app_collect_opts {
	const char *namespace;       /* required */
	const char *selector;        /* label selector for the namespaced objects, or NULL */
	int cluster_rbac;            /* also ClusterRoleBindings naming its ServiceAccounts and
	                                their ClusterRoles */
	kt_app_note_fn note;         /* skips and failures, as they happen; may be NULL */
	void *note_ctx;
} kt_app_collect_opts;

typedef struct kt_app_collect_stats {
	uint64_t objects, skipped_objects, failed;
	unsigned resources, skipped_resources;
} kt_app_collect_stats;

/*
 * Walk what a restore point of the namespace takes (docs/app-backup.md):
 * the Namespace object, every namespaced resource discovery reports (its
 * preferred version; kt_app_skip_resource and kt_app_skip_object applied),
 * then the PersistentVolumes of captured PVCs and the
 * CustomResourceDefinitions of captured custom resources (and cluster RBAC
 * when asked).  Objects go to fn one at a time, page by page, so memory
 * stays flat.  A resource that cannot be listed (RBAC, a broken aggregated
 * API) is a KT_APP_NOTE_FAILED note and the walk goes on; fn's error, a missing
 * namespace or an unreachable API server stop it.  st may be NULL.
 */
kt_code kt_app_collect(kt_kube *c, const kt_app_collect_opts *o, kt_app_object_fn fn, void *ctx,
                       kt_app_collect_stats *st, kt_error *err);

/* ---- restore transforms (transform.c) ------------------------------- */

/* Gives the restore point's VolumeSnapshot name for a PVC, or NULL. */
typedef const char *(*kt_app_snapshot_fn)(void *ctx, const char *pvc);

typedef struct kt_app_map {
	const char *from_ns;       /* the namespace the objects came from; NULL = no mapping */
	const char *to_ns;         /* target namespace; NULL = from_ns */
	int keep_node_ports;       /* keep Service ports[].nodePort */
	kt_app_snapshot_fn snapshot_of; /* PVC data sources; NULL = leave dataSource alone */
	void *ctx;
} kt_app_map;

/*
 * Clean obj in place for creating it again (docs/app-backup.md "What a
 * restore drops or rewrites"): drop cluster-assigned metadata, status,
 * owner references and controller annotations; per-kind fixes (Service IPs
 * and node ports, PVC volume and data source, Pod node, Job generated
 * selector, ServiceAccount token secrets); namespace mapping (Helm release
 * records included: kt_app_helm_map_release; one that cannot be decoded is
 * left as it is, with a warning in the log).  kind is read
 * from obj.  Idempotent.  KT_EUSAGE if obj is not an object with
 * apiVersion, kind and metadata.name.
 */
kt_code kt_app_sanitize(json_t *obj, const kt_app_map *m, kt_error *err);

/* ---- Helm release records (helm.c) ------------------------------------ */

/* Bounds on a release record read from a restore point: Helm's encoded text
 * (a Secret holds at most 1 MiB in etcd; room to spare) and its JSON once
 * unpacked (a gzip bomb stops there). */
#define KT_APP_HELM_MAX_ENCODED (8u << 20)
#define KT_APP_HELM_MAX_JSON (64u << 20)

/* Whether obj is a Helm 3 release record: a Secret of type
 * helm.sh/release.v1, or a ConfigMap labelled owner=helm with a data.release
 * entry (HELM_DRIVER=configmap). */
int kt_app_helm_is_release(json_t *obj);

/*
 * Helm's storage encoding of a release, base64(gzip(JSON)) (plain
 * base64(JSON) is read too, as Helm does).  decode: text[0..n) (at most
 * KT_APP_HELM_MAX_ENCODED) into *out, a JSON object the caller decrefs;
 * KT_ECORRUPT when it is not base64, gzip or a JSON object, KT_ELIMIT past
 * the bounds above; *out untouched on failure.  encode: the release as
 * compact JSON, gzipped (best compression, as Helm writes) and base64'd
 * into *out (NUL-terminated, caller frees; *out_len without the NUL).
 */
kt_code kt_app_helm_decode(const char *text, size_t n, json_t **out, kt_error *err);
kt_code kt_app_helm_encode(json_t *release, char **out, size_t *out_len, kt_error *err);

/*
 * Restore a Helm release record into another namespace: when obj is one
 * (kt_app_helm_is_release) and the release it holds names namespace from,
 * re-encode it naming to (nothing else in it changes) and set *changed.
 * from == to, another object, or a release of another namespace: KT_OK,
 * obj untouched.  On failure (the errors of kt_app_helm_decode) obj is
 * untouched too.  Idempotent.
 */
kt_code kt_app_helm_map_release(json_t *obj, const char *from, const char *to, int *changed,
                                kt_error *err);

/* ---- applying objects (apply.c) -------------------------------------- */

typedef enum kt_app_outcome {
	KT_APP_CREATED = 0,
	KT_APP_UPDATED,
	KT_APP_SKIPPED,     /* existed (--existing skip), or filtered out */
	KT_APP_FAILED,
	KT_APP_WOULD_CREATE, /* dry run */
	KT_APP_WOULD_UPDATE,
	KT_APP_WOULD_SKIP,
} kt_app_outcome;

/* The word a report uses for an outcome ("created", "would-skip" ...). */
const char *kt_app_outcome_name(kt_app_outcome o);

/* One line of the restore report: the object, what happened, and why
 * (the API server's message for a failure, "exists" for a skip ...). */
typedef void (*kt_app_report_fn)(void *ctx, const char *kind, const char *ns, const char *name,
                                 kt_app_outcome outcome, const char *detail);

typedef struct kt_app_apply_opts {
	int update_existing;            /* --existing update: server-side apply, forced */
	int dry_run;                    /* read the cluster, change nothing, report the plan */
	const char *const *include_kinds; /* NULL-terminated Kind names, or NULL = all */
	const char *const *exclude_kinds; /* NULL-terminated, or NULL */
	int64_t wait_ms;                /* for CRDs to be Established; 0 = 60 s */
	kt_app_report_fn report;
	void *ctx;
} kt_app_apply_opts;

typedef struct kt_app_apply_stats {
	unsigned created, updated, skipped, failed;
} kt_app_apply_stats;

/* Count outcome in st and pass the line to o->report (if any): what every
 * step of a restore does for each object it handles. */
void kt_app_report(const kt_app_apply_opts *o, kt_app_apply_stats *st, const char *kind,
                   const char *ns, const char *name, kt_app_outcome out, const char *detail);

/*
 * Create the sanitized objects (a JSON array; reordered in place by tier,
 * then kind, then name) in the cluster, tier by tier, waiting for new
 * CustomResourceDefinitions to be Established (and rediscovering) before
 * the tiers that need them.  An object that fails is reported and the
 * restore goes on; the return is KT_OK when every object was created,
 * updated or skipped, KT_EREMOTE naming the count otherwise.  Cancel,
 * discovery and transport failures stop it.
 */
kt_code kt_app_apply(kt_kube *c, json_t *objects, const kt_app_apply_opts *o,
                     kt_app_apply_stats *st, kt_error *err);

/* ---- restore points (restorepoint.c) ---------------------------------- */

struct kt_archive;

/* Tags of a restore point's repository snapshot: "app" and "ns=NAMESPACE". */
#define KT_APP_TAG "app"
/* Tag of a volume data snapshot made by `kontinuity mover backup`. */
#define KT_MOVER_TAG "volume"

typedef struct kt_app_backup_opts {
	const char *namespace;   /* required */
	const char *selector;    /* or NULL */
	int cluster_rbac;
	const char *cluster;     /* recorded as the snapshot's host; NULL = kube-system's uid */
	kt_app_note_fn note;     /* skips and failures as they happen, or NULL */
	void *note_ctx;
	void (*progress)(void *ctx, uint64_t objects, uint64_t bytes); /* or NULL */
	void *progress_ctx;
	int no_volume_snapshots;  /* do not snapshot the PVCs (their data is then not kept) */
	int64_t snapshot_timeout_ms; /* per VolumeSnapshot to become ready; 0 = 10 min */
	const struct kt_app_mover *mover; /* copy each snapshot's data into the repository
	                                     with a mover Job (mover.c), or NULL */
} kt_app_backup_opts;

typedef struct kt_app_backup_result {
	char id[65];             /* the restore point (repository snapshot id) */
	kt_app_collect_stats st;
	uint64_t bytes;          /* of the objects as stored (JSON) */
	uint64_t bytes_new;      /* what the repository did not hold yet */
	unsigned volumes;        /* PVCs whose VolumeSnapshot became ready */
	unsigned volumes_copied; /* ... whose data a mover copied into the repository */
	uint64_t data_bytes;     /* of those copies */
	int64_t duration_ms;
} kt_app_backup_result;

/*
 * Capture the namespace (kt_app_collect) into a new restore point in the
 * repository: each object as objects/GROUP/RESOURCE/NAMESPACE/NAME.json
 * (GROUP "core", NAMESPACE "_cluster" for cluster-scoped ones), a CSI
 * VolumeSnapshot of every Bound PVC (waited for until ready), then
 * manifest.json naming every object and snapshot, what was skipped and what
 * failed (the snapshot object, written last, makes it exist).  The caller holds the
 * archive's lock.  A partial failure still makes a restore point (that
 * records it); failures of the repository or the walk make none.
 */
kt_code kt_app_backup(kt_kube *c, struct kt_archive *a, const kt_app_backup_opts *o,
                      kt_app_backup_result *res, kt_error *err);

typedef struct kt_app_restore_opts {
	const char *to_namespace;       /* NULL: the namespace it came from */
	kt_app_apply_opts apply;        /* existing, dry run, kinds, report */
	int keep_node_ports;
	/* Volumes whose data the restore point holds (manifest volumes[].data)
	 * come back through mover Jobs instead of their CSI snapshots: each
	 * PVC is created empty (storage_class, or the cluster's default when
	 * its own was "" or absent), filled by `kontinuity mover restore`, and
	 * only then are the tiers after PVCs applied.  NULL: CSI snapshots. */
	const struct kt_app_mover *mover;
	const char *storage_class;      /* for those PVCs; NULL = keep theirs */
} kt_app_restore_opts;

/*
 * Recreate restore point id (a full repository snapshot id) in the cluster:
 * read its manifest and objects, sanitize and map them, and apply them in
 * restore order.  PersistentVolumes are not restored (volumes come from
 * snapshots); CRDs and cluster RBAC only when missing.  Errors as
 * kt_app_apply; KT_ECORRUPT for a manifest that is not ours.
 */
kt_code kt_app_restore(kt_kube *c, struct kt_archive *a, const char *id,
                       const kt_app_restore_opts *o, kt_app_apply_stats *st, kt_error *err);

/* A StorageClass provisioned by CSI driver (its default one if several)
 * into out; 0 when there is none.  PVCs restored from a snapshot of a
 * statically bound volume (class "") need one. */
int kt_app_class_for_driver(kt_kube *c, const char *driver, char out[254]);

/* The volume snapshots restore point id names: [{"namespace", "snapshot",
 * "content", and "data" when the mover copied the volume into the
 * repository: that snapshot's id}] (caller decrefs), or NULL with err
 * filled (kt_app_restore_point_manifest's errors). */
json_t *kt_app_restore_point_volumes(struct kt_archive *a, const char *id, kt_error *err);
/* Append the "data" ids of vols (as above; NULL is empty) to out. */
void kt_app_volume_data(json_t *vols, json_t *out);

/* Give back the storage snapshots of forgotten restore points (vols as
 * above): each content goes back to deletionPolicy Delete and its
 * VolumeSnapshot (or, when that is gone, the content) is deleted, so the
 * snapshot controller deletes the storage snapshot.  Best effort: what
 * fails is logged and counted in *n_failed. */
void kt_app_delete_volume_snapshots(kt_kube *c, json_t *vols, unsigned *n_failed);

/* ---- one restore point: show, delete, readiness (rpinfo.c) ------------ */

/* A restore point named by spec as kt_archive_find_snapshot takes it (an
 * id prefix), but "latest" is the newest restore point, not the newest
 * snapshot (volume data snapshots share the repository). */
kt_code kt_app_find_restore_point(struct kt_archive *a, const char *spec, char id[65],
                                  kt_error *err);

/* The manifest of restore point id (caller decrefs), or NULL with err:
 * KT_ECORRUPT when the snapshot is not a restore point or its manifest is
 * not ours, else the repository's error. */
json_t *kt_app_restore_point_manifest(struct kt_archive *a, const char *id, kt_error *err);

typedef struct kt_app_rp_delete_opts {
	int keep_volume_snapshots;   /* leave the VolumeSnapshots in the cluster */
	int dry_run;                 /* say what would go; change nothing */
} kt_app_rp_delete_opts;

typedef struct kt_app_rp_delete_result {
	char cluster[256];           /* the cluster the restore point came from */
	unsigned volumes_named;      /* its volume snapshots in this cluster */
	unsigned volumes_deleted;    /* of those, given back to the storage */
	unsigned data_named;         /* volume data snapshots (mover) it names */
	unsigned data_deleted;       /* of those, removed from the repository */
	char note[512];              /* why volume snapshots stay, or "" */
} kt_app_rp_delete_result;

/*
 * Delete restore point id (a full id): the repository snapshot and the
 * volume data snapshots the mover wrote for it (under a shared lock; the
 * data goes with prune) and, when c is this restore
 * point's cluster, its volume snapshots (kt_app_delete_volume_snapshots).
 * c may be NULL (volume snapshots then stay; r->note says so).
 * KT_ENOTFOUND for an unknown id, KT_EUSAGE for a snapshot that is not a
 * restore point.
 */
kt_code kt_app_restore_point_delete(kt_kube *c, struct kt_archive *a, const char *id,
                                    const kt_app_rp_delete_opts *o,
                                    kt_app_rp_delete_result *r, kt_error *err);

/* Readiness of a restored object of this Kind as a workload controller
 * reports it: 1 ready, 0 not yet (why says what is missing), -1 failed
 * for good (a Failed Job, a Lost PVC).  Kinds without readiness are ready. */
int kt_app_ready_state(const char *kind, json_t *obj, char *why, size_t why_len);

/* Called once per object when it is ready (ready 1), failed or still not
 * ready at the deadline (ready 0, why says what is missing). */
typedef void (*kt_app_ready_fn)(void *ctx, const char *kind, const char *ns, const char *name,
                                int ready, const char *why, int64_t elapsed_ms);

/*
 * Wait until every object of items ([{"kind", "namespace", "name"}]) is
 * ready (kt_app_ready_state, read from the API with backoff up to 2 s) or
 * timeout_ms passes.  *n_not_ready counts those failed or not ready at the
 * deadline.  Errors only for cancellation.
 */
kt_code kt_app_wait_ready(kt_kube *c, json_t *items, int64_t timeout_ms, kt_app_ready_fn fn,
                          void *ctx, unsigned *n_not_ready, kt_error *err);

/* ---- the volume data mover (mover.c) ---------------------------------- */

/* The image of mover Jobs unless --mover-image names another: any image
 * with `kontinuity` on its PATH (docs/app-backup.md). */
#define KT_MOVER_IMAGE "kontinuity/kontinuity:" KT_VERSION

struct kt_profile;

/* How volume data is moved: the repository is the profile's. */
typedef struct kt_app_mover {
	const struct kt_profile *profile; /* location, keys, passphrase (loaded) */
	const char *image;           /* NULL = KT_MOVER_IMAGE */
	int64_t timeout_ms;          /* per Job (activeDeadlineSeconds); 0 = 1 h */
	void (*progress)(void *ctx, const char *line); /* while a Job runs, or NULL */
	void *progress_ctx;
} kt_app_mover;

/* One volume to move. */
typedef struct kt_app_mover_volume {
	const char *namespace, *pvc;
	const char *snapshot;        /* backup: its VolumeSnapshot in namespace */
	const char *restore_size;    /* backup: the snapshot's size (quantity), or NULL */
	const char *storage_class;   /* backup: of the temporary PVC; NULL = the PVC's, else
	                                one of driver's when that is "" (static) */
	const char *driver;          /* backup: the snapshot's CSI driver */
	const char *run;             /* the run's id: tag rp=RUN, names kt-mover-RUN-INDEX */
	unsigned index;              /* the volume's number in the run */
	const char *cluster;         /* recorded as the data snapshot's host */
} kt_app_mover_volume;

typedef struct kt_app_mover_data {
	char id[65];                 /* the data snapshot in the repository */
	uint64_t bytes, files;
} kt_app_mover_data;

/*
 * Copy the data of v->snapshot into the repository a (the profile's, open,
 * shared-locked by the caller): a temporary PVC from the snapshot, a
 * temporary Secret, a Job running `kontinuity mover backup` on the volume
 * read-only; then the data snapshot found by its tags into *out.  The Job,
 * Secret and PVC are deleted in every outcome.  KT_EREMOTE with the Job's
 * Failed reason; KT_ETRANSIENT when it does not finish in time.
 */
kt_code kt_app_mover_backup(kt_kube *c, struct kt_archive *a, const kt_app_mover *m,
                            const kt_app_mover_volume *v, kt_app_mover_data *out,
                            kt_error *err);

/* A Job's outcome from its status.conditions as the API server returns
 * it: 1 Complete, 2 Failed (why gets "reason: message", truncated to cap),
 * 0 still running (anything else, malformed included). */
int kt_app_mover_job_state(json_t *job, char *why, size_t cap);

/* Restore data snapshot data_id into the PVC v->namespace/v->pvc (made
 * empty by the caller) with a Job running `kontinuity mover restore`; the
 * Job and Secret are deleted in every outcome.  Errors as above. */
kt_code kt_app_mover_restore(kt_kube *c, const kt_app_mover *m, const kt_app_mover_volume *v,
                             const char *data_id, kt_error *err);

/* ---- export profiles (profile.c) ------------------------------------- */

#define KT_PROFILE_GROUP "kontinuity.io"
#define KT_PROFILE_VERSION "v1alpha1"
#define KT_PROFILE_NAMESPACE "kontinuity"   /* where profiles live by default */
#define KT_PROFILE_NS_HELP "namespace (default " KT_PROFILE_NAMESPACE ")"

/* A Profile custom resource with its credentials (docs/profiles.md). */
typedef struct kt_profile {
	char namespace[254], name[254];
	char endpoint[513], region[65], bucket[64], prefix[513];
	int path_style;
	char *ca_pem;            /* spec.location.caBundle, or NULL */
	char secret_name[254];
	unsigned immutable_days;
	char *access_key;        /* from the Secret; NULL until loaded */
	char *secret_key;        /* wiped by kt_profile_release */
	char *repo_password;     /* the Secret's repository_password (exports), or NULL */
} kt_profile;

/* Read and check spec of a Profile object into out (no credentials). */
kt_code kt_profile_from_object(kt_profile *out, json_t *obj, kt_error *err);
/* GET the Profile ns/name and its Secret.  KT_ENOTFOUND names what is
 * missing (the Profile, the Secret, or a key in it). */
kt_code kt_profile_get(kt_kube *c, const char *ns, const char *name, kt_profile *out,
                       kt_error *err);
void kt_profile_release(kt_profile *p);

/* One line of `profile check` (the same shape as doctor's). */
typedef struct kt_profile_check {
	const char *id;          /* "bucket", "object-lock", "write" (static) */
	int result;              /* 0 ok, 1 warn, 2 fail, 3 skip */
	char detail[512];
	char fix[512];
} kt_profile_check;

/* Reach the location with the profile's keys: list under the prefix,
 * compare Object Lock with the immutability asked for, write, read back
 * and remove a probe object.  *out (caller frees) gets *n_out lines; only
 * a local failure (a temporary CA file) is an error. */
kt_code kt_profile_check_run(const kt_profile *p, kt_profile_check **out, size_t *n_out,
                             kt_error *err);

/* ---- policies (policy.c) ------------------------------------------- */

/* A Policy custom resource (docs/policies.md). */
typedef struct kt_policy {
	char namespace[254], name[254], uid[64];
	char **namespaces;       /* n_namespaces names */
	size_t n_namespaces;
	char *namespace_selector; /* namespaces whose labels match (each run), or NULL */
	char *selector;          /* or NULL */
	char schedule[257];      /* as written; "" = @hourly */
	char profile[254];
	int volume_snapshots;
	int volume_data;         /* copy each volume's data into the repository (mover) */
	char mover_image[257];   /* spec.moverImage, "" = KT_MOVER_IMAGE */
	unsigned keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly;
	char last_run[40];       /* status.lastRun.time, "" when it never ran */
	char created[40];        /* metadata.creationTimestamp */
	unsigned runs;           /* status.runs */
} kt_policy;

kt_code kt_policy_from_object(kt_policy *out, json_t *obj, kt_error *err);
void kt_policy_release(kt_policy *p);

/* The first time (unix seconds) after `after` the schedule fires: cron
 * (UTC), @hourly/@daily/@weekly/@monthly/@yearly, or @every DURATION.
 * KT_EUSAGE naming the schedule when it is not one of these. */
kt_code kt_policy_next(const kt_policy *p, int64_t after, int64_t *next, kt_error *err);

typedef struct kt_policy_run_result {
	char time[40];
	const char *result;       /* "ok", "partial" or "failed" */
	json_t *restore_points;   /* ids made (caller decrefs) */
	unsigned removed;         /* restore points the retention removed */
	unsigned snapshots_deleted; /* their volume snapshots given back to the storage */
	char message[1024];
} kt_policy_run_result;

/*
 * One run: a restore point of every namespace into the archive (the
 * profile's repository, opened by the caller) and one of the policy's own
 * namespace (kontinuity's catalog: policies, profiles, their Secrets),
 * each volume's data copied by mover Jobs when mover is not NULL (the
 * policy's volumeData is copy), then the retention applied to this
 * cluster's restore points of those namespaces, which also removes their
 * volume data copies and gives their volume snapshots back (and prune when
 * it removed some).  A namespace that fails does not stop the others: r
 * says what happened.  Errors only for the repository itself.
 */
kt_code kt_policy_run(kt_kube *c, struct kt_archive *a, const kt_policy *p,
                      const struct kt_app_mover *mover, kt_policy_run_result *r,
                      kt_error *err);

/* ---- order (order.c) ------------------------------------------------- */

#define KT_APP_TIERS 10

/* The restore tier (0..KT_APP_TIERS-1) of an object of group/kind. */
int kt_app_tier(const char *group, const char *kind);

#endif /* KT_APP_H */
