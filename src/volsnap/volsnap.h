/*
 * volsnap.h - the volume snapshot tier: CSI VolumeSnapshots
 * (snapshot.storage.k8s.io/v1) taken, listed, deleted and restored into new
 * PVCs through the API server, and the readiness checks of `doctor`.
 *
 * Library code (engine layer): talks to the cluster through src/kube, never
 * prints.  The snapshot controller and the CSI driver do the work; this layer
 * asks for it, waits for it and reports what they did.  Every error names
 * the object (namespace/name) and says what to do.
 */
#ifndef KT_VOLSNAP_H
#define KT_VOLSNAP_H

#include <jansson.h>
#include <stdint.h>

#include "core/core.h"
#include "kube/kube.h"

#define KT_VS_GROUP "snapshot.storage.k8s.io"
#define KT_VS_VERSION "v1"
/* The annotation that marks the default VolumeSnapshotClass. */
#define KT_VS_DEFAULT_ANNOTATION "snapshot.storage.kubernetes.io/is-default-class"

/* One VolumeSnapshot, flattened for reports.  Strings are "" when absent. */
typedef struct kt_vs_info {
	char namespace[254];
	char name[254];
	char uid[64];
	char pvc[254];          /* spec.source.persistentVolumeClaimName */
	char class_name[254];   /* spec.volumeSnapshotClassName */
	char content[254];      /* status.boundVolumeSnapshotContentName */
	char handle[1024];      /* the content's status.snapshotHandle (filled by wait/list) */
	char driver[254];       /* the content's spec.driver (filled by wait) */
	char restore_size[64];  /* status.restoreSize, a quantity ("1Gi") */
	char created[64];       /* status.creationTime (RFC 3339) */
	char error[512];        /* status.error.message */
	int ready;              /* status.readyToUse: 1, 0, or -1 when not reported yet */
} kt_vs_info;

/* Fill out from a VolumeSnapshot object (never fails: missing fields stay
 * empty; overlong ones are cut). */
void kt_vs_info_from(kt_vs_info *out, json_t *vs);

/* The name of the default VolumeSnapshotClass for driver (NULL = any
 * driver) into out.  KT_ENOTFOUND when there is none, KT_EUSAGE when
 * several claim to be the default for that driver (the snapshot controller
 * refuses that too); both messages say how to fix it. */
kt_code kt_vs_default_class(kt_kube *c, const char *driver, char out[254], kt_error *err);

typedef struct kt_vs_create_opts {
	const char *namespace;  /* required */
	const char *pvc;        /* required: the claim to snapshot */
	const char *name;       /* NULL: "<pvc>-<UTC yyyymmddhhmmss>" */
	const char *class_name; /* NULL: the default class of the PVC's CSI driver */
} kt_vs_create_opts;

/* Create a VolumeSnapshot of a bound PVC.  Checks first that the PVC exists
 * and is Bound and that the class exists (or finds the default one for the
 * volume's driver).  out describes the object as created. */
kt_code kt_vs_create(kt_kube *c, const kt_vs_create_opts *o, kt_vs_info *out, kt_error *err);

/* Progress while waiting: the object as last seen and the time waited. */
typedef void (*kt_vs_progress_fn)(void *ctx, const kt_vs_info *now, int64_t waited_ms);

/* Wait until ns/name is readyToUse (KT_OK, out filled with its content's
 * snapshotHandle), reports an error (KT_EREMOTE quoting status.error), is
 * deleted (KT_ENOTFOUND) or timeout_ms passes (KT_ETRANSIENT: it may still
 * become ready).  Uses a watch, re-established when the server ends it. */
kt_code kt_vs_wait_ready(kt_kube *c, const char *ns, const char *name, int64_t timeout_ms,
                         kt_vs_progress_fn progress, void *ctx, kt_vs_info *out,
                         kt_error *err);

/* Every VolumeSnapshot in ns (NULL: all namespaces), with handles filled
 * from the contents, oldest first within each namespace as the server
 * orders them.  fn may stop the walk by returning non-OK. */
typedef kt_code (*kt_vs_info_fn)(void *ctx, const kt_vs_info *vs, kt_error *err);
kt_code kt_vs_list(kt_kube *c, const char *ns, kt_vs_info_fn fn, void *ctx, kt_error *err);

/* Make a ready snapshot of another namespace (or cluster) usable in ns:
 * a pre-provisioned VolumeSnapshotContent naming the storage snapshot
 * (handle, driver; deletionPolicy Retain, so deleting the copy never
 * deletes the storage snapshot) and a VolumeSnapshot name in ns bound to
 * it.  KT_EEXIST when name exists in ns already. */
kt_code kt_vs_import(kt_kube *c, const char *ns, const char *name, const char *handle,
                     const char *driver, const char *class_name, kt_error *err);

/* Delete ns/name (the controller deletes the content and the storage
 * snapshot when the class's deletionPolicy is Delete). */
kt_code kt_vs_delete(kt_kube *c, const char *ns, const char *name, kt_error *err);

typedef struct kt_vs_restore_opts {
	const char *namespace;     /* of the snapshot and the new PVC */
	const char *snapshot;      /* required */
	const char *pvc;           /* required: the new claim's name */
	const char *size;          /* NULL: the snapshot's restoreSize */
	const char *storage_class; /* NULL: the source PVC's, else the cluster default */
	const char *access_mode;   /* NULL: the source PVC's, else ReadWriteOnce */
} kt_vs_restore_opts;

/* Create a PVC whose dataSource is the snapshot.  Refuses a snapshot that
 * is not ready, a size below its restoreSize and an existing PVC name.
 * *out (may be NULL) gets the created PVC (caller decrefs). */
kt_code kt_vs_restore(kt_kube *c, const kt_vs_restore_opts *o, json_t **out, kt_error *err);

/* Wait until PVC ns/name is Bound.  *waits_for_consumer is set (and KT_OK
 * returned at once) when its StorageClass binds only when a pod uses it
 * (WaitForFirstConsumer): nothing will happen before then. */
kt_code kt_vs_wait_bound(kt_kube *c, const char *ns, const char *name, int64_t timeout_ms,
                         int *waits_for_consumer, kt_error *err);

/* A resource quantity ("1Gi", "500M", "1.5Gi", "1e9", "100") in bytes,
 * rounded up.  KT_EUSAGE for anything else or past 2^63. */
kt_code kt_vs_quantity(const char *q, uint64_t *bytes, kt_error *err);

/* ---- doctor (doctor.c) ---------------------------------------------- */

typedef enum kt_doctor_result { KT_DOCTOR_OK = 0, KT_DOCTOR_WARN, KT_DOCTOR_FAIL, KT_DOCTOR_SKIP } kt_doctor_result;

typedef struct kt_doctor_check {
	const char *id;        /* "crds", "default-class", ... (static) */
	kt_doctor_result result;
	char detail[512];      /* what was found */
	char fix[512];         /* what to do ("" when ok) */
} kt_doctor_check;

typedef struct kt_doctor_opts {
	const char *etcd_manifest; /* static pod manifest that marks a control-plane node;
	                              NULL = /etc/kubernetes/manifests/etcd.yaml */
	int64_t etcd_timeout_ms;   /* 0 = 5 s */
} kt_doctor_opts;

/* Run every check in order; *out (caller frees) gets *n_out results.
 * Fails only when the API server cannot be reached at all (the checks need
 * it); every other problem is a FAIL or WARN entry. */
kt_code kt_doctor_run(kt_kube *c, const kt_doctor_opts *o, kt_doctor_check **out,
                      size_t *n_out, kt_error *err);

#endif /* KT_VOLSNAP_H */
