"""The Kubernetes manifests, checked without a cluster: rendered by ``kubectl kustomize``
(kustomize built into kubectl), every object validated against the Kubernetes OpenAPI
schemas that ``kubernetes-validate`` ships (KEDA's ScaledObject against its CRD's
required shape), then what an SRE would check by eye."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
#: The Kubernetes version whose schemas the manifests must pass.
K8S_VERSION = "1.30"


def render(path: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render deploy/k8s"
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(K8S / "base")


@pytest.fixture(scope="module")
def sandboxed() -> list[dict[str, Any]]:
    return render(K8S / "overlays" / "code-sandbox")


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    }


def check_scaled_object(doc: dict[str, Any]) -> None:
    """KEDA's CRD: apiVersion keda.sh/v1alpha1, a scaleTargetRef name and triggers."""
    assert doc["apiVersion"] == "keda.sh/v1alpha1"
    spec = doc["spec"]
    assert isinstance(spec["scaleTargetRef"]["name"], str)
    assert spec["triggers"], "no triggers"
    for trigger in spec["triggers"]:
        assert isinstance(trigger["type"], str)
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger
    assert spec.get("minReplicaCount", 0) <= spec["maxReplicaCount"]


@pytest.mark.parametrize("overlay", ["base", "overlays/code-sandbox"])
def test_every_object_passes_its_schema(overlay: str) -> None:
    docs = render(K8S / overlay)
    assert len(docs) > 10
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            check_scaled_object(doc)
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_schema_check_rejects_a_broken_manifest(base: list[dict[str, Any]]) -> None:
    """The validator above can fail: a misspelt field in a Deployment is refused."""
    api = dict(by_kind(base, "Deployment")["ttc-api"])
    api["spec"] = {**api["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, K8S_VERSION, strict=True)


def test_pods_run_non_root_read_only_with_resources(base: list[dict[str, Any]]) -> None:
    specs = pod_specs(base)
    assert {"ttc-api", "ttc-worker", "ttc-beat", "ttc-flower", "ttc-migrate"} <= set(specs)
    for name, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert {"requests", "limits"} <= set(container["resources"]), name
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, name  # writable scratch on a read-only root


def test_api_and_workers_have_probes(base: list[dict[str, Any]]) -> None:
    specs = pod_specs(base)
    for name in ("ttc-api", "ttc-worker"):
        container = specs[name]["containers"][0]
        assert {"livenessProbe", "startupProbe"} <= set(container), name
    assert "readinessProbe" in specs["ttc-api"]["containers"][0]


def test_exactly_one_beat(base: list[dict[str, Any]]) -> None:
    deployments = by_kind(base, "Deployment")
    beats = [
        d
        for d in deployments.values()
        if "beat" in d["spec"]["template"]["spec"]["containers"][0]["command"]
    ]
    assert len(beats) == 1
    assert beats[0]["spec"]["replicas"] == 1
    assert beats[0]["spec"]["strategy"]["type"] == "Recreate"
    assert not [d for d in base if d["kind"] == "ScaledObject" and "beat" in d["metadata"]["name"]]


def test_flower_is_behind_auth_and_not_exposed(base: list[dict[str, Any]]) -> None:
    flower = pod_specs(base)["ttc-flower"]["containers"][0]
    secret_refs = [e["secretRef"]["name"] for e in flower["envFrom"] if "secretRef" in e]
    secret = next(d for d in base if d["kind"] == "Secret" and d["metadata"]["name"] in secret_refs)
    assert "FLOWER_BASIC_AUTH" in secret["data"]
    assert by_kind(base, "Service")["ttc-flower"]["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert not [d for d in base if d["kind"] == "Ingress"]


def test_migrations_run_as_a_job(base: list[dict[str, Any]]) -> None:
    job = by_kind(base, "Job")["ttc-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["ttc", "migrate"]


def test_workers_scale_on_queue_depth(base: list[dict[str, Any]]) -> None:
    scaled = by_kind(base, "ScaledObject")["ttc-worker"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "ttc-worker"
    lists = {t["metadata"]["listName"] for t in scaled["spec"]["triggers"]}
    assert {"ttc.expand", "ttc.driver"} <= lists


def _egress_to_inference(policy: dict[str, Any]) -> bool:
    for rule in policy["spec"].get("egress", []):
        for peer in rule.get("to", []):
            labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
            if labels.get("ttc.dev/inference") == "true":
                return True
    return False


def test_only_workers_reach_inference_endpoints(base: list[dict[str, Any]]) -> None:
    policies = by_kind(base, "NetworkPolicy")
    assert policies["default-deny"]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    to_inference = [p for p in policies.values() if _egress_to_inference(p)]
    assert to_inference, "no policy lets anything reach the inference namespace"
    for policy in to_inference:
        labels = policy["spec"]["podSelector"]["matchLabels"]
        assert labels.get("app.kubernetes.io/component") == "worker", policy["metadata"]["name"]
    inference = yaml.safe_load((K8S / "inference" / "networkpolicy.yaml").read_text())
    kubernetes_validate.validate(inference, K8S_VERSION, strict=True)
    peer = inference["spec"]["ingress"][0]["from"][0]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"


def test_code_sandbox_component_grants_what_bubblewrap_needs(
    sandboxed: list[dict[str, Any]],
) -> None:
    specs = pod_specs(sandboxed)
    worker = specs["ttc-worker"]
    assert worker["securityContext"]["seccompProfile"]["type"] == "Unconfined"
    caps = worker["containers"][0]["securityContext"]["capabilities"]
    assert set(caps["add"]) == {"SETUID", "SETGID", "KILL"}
    assert worker["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    # Only the workers change; the API stays restricted.
    assert specs["ttc-api"]["securityContext"]["runAsNonRoot"] is True
