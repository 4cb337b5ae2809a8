"""Every PromQL expression shipped (dashboard panels, adapter rules) parses, checked by promtool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.files import K8S, adapter_config, find_tool

# What Grafana and prometheus-adapter substitute before the query reaches Prometheus.
GRAFANA_VARS = {"$__rate_interval": "1m", "$namespace": "modelpress", "$model": ".*"}
ADAPTER_VARS = {"<<.LabelMatchers>>": 'namespace="modelpress",pod="p"', "<<.GroupBy>>": "pod"}


def _promtool() -> str:
    path = find_tool("promtool")
    if path is None:
        pytest.skip("promtool not found (`make tools` installs Debian's prometheus package)")
    return path


def _grafana(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


def _adapter(rule: dict) -> str:
    series = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["seriesQuery"].strip("'\"")).group(0)
    expr = rule["metricsQuery"].replace("<<.Series>>", series)
    for var, value in ADAPTER_VARS.items():
        expr = expr.replace(var, value)
    return expr


def _check(promtool: str, exprs: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    rules = {
        "groups": [{"name": "shipped", "rules": [{"record": f"check:expr{i}", "expr": e} for i, e in enumerate(exprs)]}]
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_shipped_promql_parses(rendered: dict[str, list[dict]], tmp_path: Path) -> None:
    promtool = _promtool()
    dashboard = json.loads((K8S / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [_grafana(t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [_adapter(rule) for rule in adapter_config(rendered["monitoring"])["rules"]]
    assert len(exprs) >= 20
    result = _check(promtool, exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_bad_promql(tmp_path: Path) -> None:
    result = _check(_promtool(), ["sum by (model (rate(x[1m]))"], tmp_path)
    assert result.returncode != 0
