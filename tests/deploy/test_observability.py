"""The chart and the kustomize component ship the generated dashboard and rules unchanged."""
import json
import shutil

import yaml

from tagrouter.dev import observability
from tests.deploy import render


def test_the_chart_ships_the_dashboard_and_the_prometheus_rule():
    docs = render.helm_template(None, "--set", "grafanaDashboard.enabled=true", "--set", "prometheusRule.enabled=true")
    board = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("grafana-dashboard"))
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["tagrouter-dashboard.json"]) == observability.dashboard()
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"] == observability.rules()
    assert not [d for d in render.helm_template(None) if d["kind"] == "PrometheusRule"]  # off by default


def test_the_kustomize_component_ships_the_dashboard(tmp_path):
    shutil.copytree(render.K8S, tmp_path / "k8s")  # kustomize reads only below the overlay's root
    overlay = tmp_path / "k8s" / "overlays" / "dashboard"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["../../base"], "components": ["../../components/grafana-dashboard"]}))
    docs = render.kustomize(overlay)
    board = next(d for d in docs if d["metadata"]["name"] == "tagrouter-grafana-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["tagrouter-dashboard.json"]) == observability.dashboard()
