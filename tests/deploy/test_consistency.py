"""The rendered manifests agree with the code, and the check fails when one side changes."""
from __future__ import annotations

import copy
import shutil

import pytest

from services.common.settings import DEFAULT_PORTS, ENVIRONMENT
from tests.deploy import render
from tests.deploy.conftest import EXTERNAL_SECRETS, TARGETS
from tests.deploy.consistency import SERVICE_NAMES, check


def _check(docs, target, **code_side):
    return check(docs, external_secrets=EXTERNAL_SECRETS.get(target, ()), **code_side)


@pytest.mark.parametrize("target", TARGETS)
def test_manifests_agree_with_the_code(rendered, target):
    assert _check(rendered(target), target) == []


def _container(docs, name):
    return next(c for d in docs if d["kind"] == "Deployment"
                for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def _config_map_with(docs, key):
    return next(d for d in docs if d["kind"] == "ConfigMap" and key in d.get("data", {}))


# --- the manifest side changes -------------------------------------------------------------

@pytest.mark.parametrize("target", ["kustomize:prod", "helm:dev"])
def test_a_container_port_changed_in_the_manifest_only_is_caught(rendered, target):
    docs = copy.deepcopy(rendered(target))
    next(p for p in _container(docs, "tagger")["ports"] if p["name"] == "grpc")["containerPort"] = 50099
    problems = "\n".join(_check(docs, target))
    assert "container port grpc is 50099, the service listens on 50053" in problems


@pytest.mark.parametrize("target", ["kustomize:dev", "helm:prod"])
def test_a_listening_port_changed_in_the_manifest_only_is_caught(rendered, target):
    docs = copy.deepcopy(rendered(target))
    _config_map_with(docs, "TAGGER_ADDR")  # the router's map, not touched
    scorer_map = next(d for d in docs if d["kind"] == "ConfigMap" and d["data"].get("TAGROUTER_PORT") == "50052")
    scorer_map["data"]["TAGROUTER_PORT"] = "50062"
    problems = "\n".join(_check(docs, target))
    assert "the service listens on 50062" in problems  # container port, probes and address disagree
    assert "default port is 50052" in problems


@pytest.mark.parametrize("target", ["kustomize:prod", "helm:prod"])
def test_an_environment_name_changed_in_the_manifest_only_is_caught(rendered, target):
    docs = copy.deepcopy(rendered(target))
    data = _config_map_with(docs, "TAGGER_ADDR")["data"]
    data["TAGROUTER_TAGGER_ADDRESS"] = data.pop("TAGGER_ADDR")
    problems = "\n".join(_check(docs, target))
    assert "sets TAGROUTER_TAGGER_ADDRESS, which no service reads" in problems
    assert "TAGGER_ADDR is required but not set" in problems


def test_a_probe_target_changed_in_the_manifest_only_is_caught(rendered):
    docs = copy.deepcopy(rendered("kustomize:prod"))
    container = _container(docs, "scorer")
    container["readinessProbe"]["grpc"]["service"] = "tagrouter.scorer.v2.ScorerService"
    container["livenessProbe"]["grpc"]["port"] = 50051
    problems = "\n".join(_check(docs, "kustomize:prod"))
    assert "'tagrouter.scorer.v2.ScorerService'" in problems
    assert "livenessProbe checks port 50051, the service listens on 50052" in problems


def test_a_variable_given_to_the_wrong_service_is_caught(rendered):
    docs = copy.deepcopy(rendered("kustomize:dev"))
    _config_map_with(docs, "TAGROUTER_MODEL_DIR")["data"]["REDIS_URL"] = "redis://redis:6379/0"
    assert "sets REDIS_URL, which is read by the scorer, not the tagger" in "\n".join(_check(docs, "kustomize:dev"))


@pytest.mark.parametrize("target", ["kustomize:prod", "helm:dev"])
def test_a_trained_tagger_in_front_of_the_prototype_starter_weights_is_caught(rendered, target):
    docs = copy.deepcopy(rendered(target))
    _config_map_with(docs, "TAGROUTER_MODEL_DIR")["data"]["TAGROUTER_TAGGER_HEADS"] = "true"  # the tagger's alone
    assert ("the tagger tags with the trained heads, but the scorer starts from starter_weights.json"
            in "\n".join(_check(docs, target)))


def test_an_edited_overlay_rendered_by_kustomize_is_caught(tmp_path):
    """A real edit of the checked-in files, rendered by kubectl kustomize: port and name drift."""
    tree = tmp_path / "k8s"
    shutil.copytree(render.K8S, tree)
    base = tree / "base" / "kustomization.yaml"
    base.write_text(base.read_text().replace("SCORER_ADDR=scorer:50052", "SCORER_ADDRESS=scorer:50052"))
    router = tree / "base" / "tagger.yaml"
    router.write_text(router.read_text().replace("containerPort: 50053", "containerPort: 50054"))
    problems = "\n".join(check(render.kustomize(tree / "overlays" / "dev")))
    assert "SCORER_ADDRESS, which no service reads" in problems
    assert "container port grpc is 50054" in problems


def test_a_port_changed_in_the_helm_values_only_is_caught():
    """The chart stays self-consistent, but no longer matches the code's port."""
    docs = render.helm_template("dev", "--set", "tagger.port=50060")
    problems = "\n".join(check(docs))
    assert "listens on 50060, the code's default port is 50053" in problems


def test_a_grace_period_shorter_than_the_drain_is_caught(rendered):
    docs = copy.deepcopy(rendered("kustomize:dev"))
    _config_map_with(docs, "TAGROUTER_GRACE_SECONDS")["data"]["TAGROUTER_GRACE_SECONDS"] = "45"
    assert "is not longer than the drain" in "\n".join(_check(docs, "kustomize:dev"))


def test_a_missing_secret_is_caught(rendered):
    assert "Secret tagrouter-redis is neither rendered" in "\n".join(check(rendered("kustomize:prod")))


# --- the code side changes -----------------------------------------------------------------

@pytest.mark.parametrize("target", ["kustomize:prod", "helm:prod"])
def test_a_default_port_changed_in_the_code_only_is_caught(rendered, target):
    ports = dict(DEFAULT_PORTS, router=50061)
    problems = "\n".join(_check(rendered(target), target, default_ports=ports))
    assert "listens on 50051, the code's default port is 50061" in problems


@pytest.mark.parametrize("target", ["kustomize:dev", "helm:dev"])
def test_an_environment_name_changed_in_the_code_only_is_caught(rendered, target):
    renamed = {("TAGROUTER_MODEL_PATH" if k == "TAGROUTER_MODEL_DIR" else k): v for k, v in ENVIRONMENT.items()}
    problems = "\n".join(_check(rendered(target), target, environment=renamed))
    assert "sets TAGROUTER_MODEL_DIR, which no service reads" in problems


def test_a_required_variable_renamed_in_the_code_only_is_caught(rendered, monkeypatch):
    """The settings classes themselves parse the rendered environment: rename what they read."""
    from services.common import env as settings

    original = settings.Env.str

    def renamed(self, name, default=None):
        return original(self, "TAGROUTER_REDIS_URL" if name == "REDIS_URL" else name, default)

    monkeypatch.setattr(settings.Env, "str", renamed)
    problems = "\n".join(_check(rendered("helm:dev"), "helm:dev"))
    assert "TAGROUTER_REDIS_URL is required but not set" in problems


def test_a_grpc_service_renamed_in_the_code_only_is_caught(rendered):
    names = dict(SERVICE_NAMES, tagger="tagrouter.tagger.v2.TaggerService")
    problems = "\n".join(_check(rendered("kustomize:prod"), "kustomize:prod", service_names=names))
    assert "the service reports 'tagrouter.tagger.v2.TaggerService'" in problems


@pytest.mark.parametrize("target", ["kustomize:dev", "kustomize:prod", "helm:dev", "helm:prod", "helm:defaults"])
def test_the_admin_token_secret_is_not_optional(rendered, target):
    """Issue 13 finding 8: a missing admin Secret must keep the scorer from starting, not leave
    LoadWeights and Feedback open on [::] (and the scorer refuses to start without a token there)."""
    scorer = next(d for d in rendered(target) if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("scorer"))
    env = {e["name"]: e for e in scorer["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    ref = env["TAGROUTER_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert not ref.get("optional", False)
    secrets = {d["metadata"]["name"] for d in rendered(target) if d["kind"] == "Secret"}
    assert ref["name"] in secrets | set(EXTERNAL_SECRETS.get(target, ()))
