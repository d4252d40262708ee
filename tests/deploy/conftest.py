"""Rendered manifests, once per session: every kustomize overlay and the chart per values file."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.deploy import render

# Secrets that a profile expects to exist before install (deploy/README.md).
EXTERNAL_SECRETS = {"kustomize:prod": ("tagrouter-redis", "tagrouter-admin"),
                    "helm:prod": ("tagrouter-redis", "tagrouter-admin"),
                    "kustomize:prod+gateway": ("tagrouter-redis", "tagrouter-admin"),
                    "helm:prod+gateway": ("tagrouter-redis", "tagrouter-admin", "llm-api-keys")}
# The gateway as the tests add it: its kustomize component on the prod overlay, the chart's
# values-prod.yaml with this file (the key of an external provider from a Secret).
GATEWAY_VALUES = Path(__file__).parent / "gateway-values.yaml"

TARGETS = ([f"kustomize:{o}" for o in render.OVERLAYS] + [f"helm:{v}" for v in render.HELM_VALUES] + ["helm:defaults"]
           + ["kustomize:prod+gateway", "helm:prod+gateway"])


def render_target(target: str) -> list[dict]:
    tool, profile = target.split(":")
    profile, _, component = profile.partition("+")
    if tool == "kustomize" and component:
        return render.overlay_with(Path(tempfile.mkdtemp(prefix="k8s-")), component, overlay=profile)
    if tool == "kustomize":
        return render.kustomize(render.K8S / "overlays" / profile)
    extra = ("--values", str(GATEWAY_VALUES)) if component == "gateway" else ()
    return render.helm_template(None if profile == "defaults" else profile, *extra)


@pytest.fixture(scope="session")
def rendered():
    """target -> list of objects; a missing tool fails the session's deploy tests, never skips."""
    cache: dict[str, list[dict]] = {}

    def get(target: str) -> list[dict]:
        if target not in cache:
            cache[target] = render_target(target)
        return cache[target]

    return get
