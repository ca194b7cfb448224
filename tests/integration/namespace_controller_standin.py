"""Stand-in for kube-controller-manager's namespace controller (and, for the
objects it leaves behind, the controllers that would remove their
finalizers): kube-apiserver alone marks a deleted namespace Terminating and
never finishes, because emptying it and removing the `kubernetes` finalizer
is the namespace controller's work.

delete_namespace(api, ns) does what that controller does: DELETE the
namespace, delete every object of every namespaced resource the server
serves (found by discovery), drop the finalizers the absent controllers would
drop (pvc-protection, the snapshot controller's), finalize the namespace
(PUT .../finalize with no finalizers) and wait until it is gone."""

import time


def _namespaced_resources(api):
    out = []
    core = api.get("/api/v1")
    for r in core.get("resources", []):
        if "/" not in r["name"] and r.get("namespaced") and "delete" in r.get("verbs", []):
            out.append(("/api/v1", r["name"]))
    for g in api.get("/apis").get("groups", []):
        gv = g["preferredVersion"]["groupVersion"]
        status, doc = api.request("GET", f"/apis/{gv}")
        if status != 200:
            continue
        for r in doc.get("resources", []):
            if "/" not in r["name"] and r.get("namespaced") and \
                    "delete" in r.get("verbs", []) and "list" in r.get("verbs", []):
                out.append((f"/apis/{gv}", r["name"]))
    return out


def delete_namespace(api, ns, timeout=60):
    status, _ = api.request("DELETE", f"/api/v1/namespaces/{ns}")
    assert status in (200, 202), f"DELETE namespace {ns}: {status}"
    deadline = time.monotonic() + timeout
    resources = _namespaced_resources(api)
    while True:
        left = 0
        for base, res in resources:
            status, doc = api.request("GET", f"{base}/namespaces/{ns}/{res}")
            if status != 200:
                continue
            for o in doc.get("items", []):
                left += 1
                name = o["metadata"]["name"]
                path = f"{base}/namespaces/{ns}/{res}/{name}"
                if o["metadata"].get("finalizers"):
                    api.request("PATCH", path, {"metadata": {"finalizers": None}},
                                content_type="application/merge-patch+json")
                if not o["metadata"].get("deletionTimestamp"):
                    api.request("DELETE", path)
        if left == 0:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"namespace {ns}: {left} objects would not go")
        time.sleep(0.2)
    ns_obj = api.get(f"/api/v1/namespaces/{ns}")
    if ns_obj is not None:
        ns_obj["spec"]["finalizers"] = []
        api.request("PUT", f"/api/v1/namespaces/{ns}/finalize", ns_obj)
    while api.request("GET", f"/api/v1/namespaces/{ns}")[0] != 404:
        if time.monotonic() > deadline:
            raise AssertionError(f"namespace {ns} is still there")
        time.sleep(0.2)
