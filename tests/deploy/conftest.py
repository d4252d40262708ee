"""Rendered manifests, once per session: every kustomize overlay and the chart per values file."""
from __future__ import annotations

import pytest

from tests.deploy import render

# Secrets that a profile expects to exist before install (deploy/README.md).
EXTERNAL_SECRETS = {"kustomize:prod": ("tagrouter-redis", "tagrouter-admin"),
                    "helm:prod": ("tagrouter-redis", "tagrouter-admin")}

TARGETS = [f"kustomize:{o}" for o in render.OVERLAYS] + [f"helm:{v}" for v in render.HELM_VALUES] + ["helm:defaults"]


def render_target(target: str) -> list[dict]:
    tool, profile = target.split(":")
    if tool == "kustomize":
        return render.kustomize(render.K8S / "overlays" / profile)
    return render.helm_template(None if profile == "defaults" else profile)


@pytest.fixture(scope="session")
def rendered():
    """target -> list of objects; a missing tool fails the session's deploy tests, never skips."""
    cache: dict[str, list[dict]] = {}

    def get(target: str) -> list[dict]:
        if target not in cache:
            cache[target] = render_target(target)
        return cache[target]

    return get
