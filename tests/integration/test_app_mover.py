

def test_valgrind_app_backup_and_restore_with_the_mover(kube_apiserver, app, api, minio,
                                                         data_standins, tmp_path):
    """valgrind on the orchestrator and, through the job runner, on the mover
    it starts: app backup --profile (copy), then app restore --volume-data copy
    into another namespace with --storage-class (the PVC made empty, filled by
    a mover Job)."""
    from test_s3 import s3tool
    from test_valgrind import VALGRIND
    standin, runner = data_standins
    runner.wrapper = VALGRIND
    ns = app["ns"]
    vol = app_volume(api, ns, standin)
    fill(vol / "vg")
    s3tool(minio, "rp-mover-vg", "mb")
    make_profile(kube_apiserver, minio, tmp_path, "mover-vg", "rp-mover-vg")
    to = ns + "-vgm"
    for args in (["app", "backup", ns, "--profile", "mover-vg"],
                 ["app", "restore", "latest", "--profile", "mover-vg", "--volume-data", "copy",
                  "--to-namespace", to, "--storage-class", "standin",
                  "--include-kinds", "Namespace,PersistentVolumeClaim"]):
        r = subprocess.run([*VALGRIND, str(KT), *args, "--kubeconfig",
                            str(kube_apiserver.kubeconfig)], capture_output=True, text=True,
                           env=env(), timeout=900)
        assert r.returncode != 99, f"valgrind found errors:\n{r.stderr[-6000:]}"
        assert r.returncode == 0, r.stderr
    assert len(runner.ran) == 2 and runner.ran[0][2][0] == "valgrind"
    for ns_, job, _, _ in runner.ran:
        log = (tmp_path / f"{ns_}_{job}.log").read_text()
        assert "ERROR SUMMARY" not in log or "ERROR SUMMARY: 0" in log, log[-4000:]
    assert not [x for x in runner.ran if "99" in x]
    pvc = api.get(f"/api/v1/namespaces/{to}/persistentvolumeclaims/data-pg-0")
    assert pvc["spec"]["storageClassName"] == "standin" and "dataSource" not in pvc["spec"]
    assert tree(app_volume(api, to, standin)) == tree(vol)
    assert leftovers(api, ns) == [] and leftovers(api, to) == []
