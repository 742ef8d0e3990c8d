"""The Grafana dashboards and their provisioning, checked without Grafana or Prometheus: the
conventions every panel follows (one datasource variable, a title, a description and a unit,
``$__rate_interval`` windows) and the contract with the code: every metric a dashboard (or a
Prometheus rule under ``dashboards/prometheus``) names is one the app exports, with the labels
the query uses. A renamed metric or label fails here, not on an empty panel in production.

Whether each query returns data under traffic is the end-to-end test's job (it runs them
against a real Prometheus); this one is fast and runs everywhere.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from control_plane.experiments.gauges import StoreCollector
from tests.fixtures import app_client, app_state
from tests.grafana import (
    DASHBOARDS_DIR,
    PanelQuery,
    fill,
    groupings,
    load_dashboards,
    metric_names,
    panel_queries,
    selectors,
    variable_queries,
    walk_panels,
)

UIDS = ("rollgraph-overview", "rollgraph-workflow", "rollgraph-experiment")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RULES_DIR = DASHBOARDS_DIR.parent / "prometheus"
PROVISIONING = DASHBOARDS_DIR / "provisioning"
UNITS = {"reqps", "ops", "percentunit", "s", "currencyUSD", "none"}
# Prometheus adds these to every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})

Exported = dict[str, frozenset[str]]  # sample name -> its label names


DASHBOARDS = load_dashboards()


def all_queries() -> list[PanelQuery]:
    return [query for dashboard in DASHBOARDS.values() for query in panel_queries(dashboard)]


def rule_exprs() -> list[tuple[str, str]]:
    """``(where, expr)`` of every rule in ``dashboards/prometheus/*.yml``; files without
    ``groups`` (promtool unit tests, say) are not rule files."""
    found = []
    for path in sorted([*RULES_DIR.glob("*.yml"), *RULES_DIR.glob("*.yaml")]):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or "groups" not in document:
            continue
        for group in document["groups"] or []:
            for rule in group.get("rules") or []:
                name = rule.get("record") or rule.get("alert")
                found.append((f"{path.name}: {name}", str(rule["expr"])))
    return found


def dummy_values(dashboard: dict[str, Any]) -> dict[str, str]:
    """A value for each of the dashboard's variables, for filling queries in."""
    return {
        variable["name"]: "x" for variable in dashboard["templating"]["list"] if "name" in variable
    }


# -- what the app exports ----------------------------------------------------------------------
def _add_family(exported: Exported, name: str, kind: str, labels: frozenset[str]) -> None:
    if kind == "counter":
        names = {f"{name}_total": labels}
    elif kind == "histogram":
        # The bare name as well: a native-histogram query names it so.
        names = {name: labels, f"{name}_sum": labels, f"{name}_count": labels}
        names[f"{name}_bucket"] = labels | {"le"}
    else:
        names = {name: labels}
    for sample, sample_labels in names.items():
        exported[sample] = exported.get(sample, frozenset()) | sample_labels


def _wrappers(holder: object) -> list[MetricWrapperBase]:
    """The metrics ``holder`` declares, with those of the groups it holds (``metrics.shadow``)."""
    found: list[MetricWrapperBase] = []
    for value in vars(holder).values():
        if isinstance(value, MetricWrapperBase):
            found.append(value)
        elif type(value).__module__.startswith("control_plane.metrics"):
            found.extend(_wrappers(value))
    return found


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Every sample name the app exports, with its label names: what a scrape of a real app
    shows, plus what it declares but shows only once something happened (a labelled counter
    appears on its first increment, the store gauges with a running experiment)."""
    database = tmp_path_factory.mktemp("dashboards") / "rollgraph.db"
    admin_key = "rgk" + secrets.token_urlsafe(32)
    found: Exported = {}
    with app_client(
        f"sqlite:///{database}", admin_key, run_engine=None, authenticated=False
    ) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/metrics")
        assert response.status_code == 200
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = frozenset(sample.labels)
                found[sample.name] = found.get(sample.name, frozenset()) | labels
        metrics = app_state(client).metrics
    # prometheus-client has no public accessor for the label names a metric was declared
    # with (only for the samples it has), so the declared ones are read from `_labelnames`.
    for metric in _wrappers(metrics):
        for family in metric.describe():
            _add_family(found, family.name, family.type, frozenset(metric._labelnames))
    for family in StoreCollector(lambda: None).describe():
        _add_family(found, family.name, family.type, frozenset(family._labelnames))
    return found


def unknown_metrics(expr: str, exported: Exported) -> set[str]:
    """Metric names in ``expr`` the app does not export; recording rules (names with ``:``)
    are the rules' own outputs, not the app's, and are left out."""
    return {name for name in metric_names(expr) if ":" not in name and name not in exported}


def label_problems(expr: str, exported: Exported) -> list[str]:
    """Labels ``expr`` matches or groups by that its metrics do not have."""
    problems = []
    for selector in selectors(expr):
        name = selector.metric
        if name is None or name not in exported:
            continue  # an unknown name is unknown_metrics' finding
        missing = selector.labels - exported[name] - TARGET_LABELS
        problems += [f"{name} has no label {label!r}" for label in sorted(missing)]
    for grouping in groupings(expr):
        known = [m for m in grouping.metrics if m in exported]
        if grouping.opaque or not known or len(known) != len(grouping.metrics):
            continue  # labels made in the expression, or metrics this check cannot see
        have = frozenset().union(*(exported[m] for m in known)) | TARGET_LABELS
        absent = set(grouping.labels) - have
        problems += [
            f"by ({', '.join(grouping.labels)}): none of {sorted(known)} has {label!r}"
            for label in sorted(absent)
        ]
    return problems


# -- the dashboards themselves -----------------------------------------------------------------
def test_the_three_dashboards_exist_with_stable_uids() -> None:
    assert set(DASHBOARDS) == set(UIDS)
    for uid, dashboard in DASHBOARDS.items():
        assert (DASHBOARDS_DIR / f"{uid}.json").is_file(), uid
        assert dashboard["title"].strip(), uid
        assert dashboard["tags"] == ["rollgraph"], uid
        assert dashboard["schemaVersion"] == 39, uid
        assert dashboard.get("id") is None, uid  # an id would clash with another Grafana's


@pytest.mark.parametrize("uid", UIDS)
def test_exactly_one_datasource_variable(uid: str) -> None:
    variables = DASHBOARDS[uid]["templating"]["list"]
    datasources = [v for v in variables if v["type"] == "datasource"]
    assert len(datasources) == 1
    (variable,) = datasources
    assert (variable["name"], variable["query"]) == ("datasource", "prometheus")


def _datasource_refs(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield path, value
            yield from _datasource_refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _datasource_refs(value, f"{path}/{index}")


@pytest.mark.parametrize("uid", UIDS)
def test_every_query_uses_the_datasource_variable(uid: str) -> None:
    dashboard = DASHBOARDS[uid]
    wrong = [(p, ref) for p, ref in _datasource_refs(dashboard) if ref != DATASOURCE]
    assert not wrong
    # And none relies on a default: each panel, target, annotation and query variable says so.
    for panel in walk_panels(dashboard):
        if panel["type"] != "row":
            assert panel.get("datasource") == DATASOURCE, panel["title"]
            assert panel["targets"], panel["title"]
            assert all(t.get("datasource") == DATASOURCE for t in panel["targets"])
    for annotation in dashboard["annotations"]["list"]:
        assert annotation.get("datasource") == DATASOURCE, annotation["name"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable.get("datasource") == DATASOURCE, variable["name"]


@pytest.mark.parametrize("uid", UIDS)
def test_every_panel_has_a_title_a_description_and_a_unit(uid: str) -> None:
    panels = [p for p in walk_panels(DASHBOARDS[uid]) if p["type"] != "row"]
    assert panels
    ids = [p["id"] for p in walk_panels(DASHBOARDS[uid])]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles))  # the e2e test and its reports name panels by title
    for panel in panels:
        assert panel["type"] in ("timeseries", "stat"), panel["title"]
        assert panel["title"].strip(), panel
        assert panel.get("description", "").strip(), panel["title"]
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit in UNITS, (panel["title"], unit)
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}, panel["title"]


_WINDOW = re.compile(r"\[([^\]]*)\]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


def test_every_range_window_is_a_grafana_interval() -> None:
    # A fixed window like [5m] is too short for a slow scrape interval and too coarse when
    # zoomed in; $__rate_interval follows both (at least four scrape intervals).
    for query in all_queries():
        windows = _WINDOW.findall(_STRING.sub('""', query.expr))
        for window in windows:
            assert window in ("$__rate_interval", "$__range"), (query, window)
        if re.search(r"\b(rate|irate|increase)\(", query.expr):
            assert windows, query
        assert "offset" not in query.expr or re.search(r"offset \$__", query.expr), query


def test_variables() -> None:
    assert variable_queries(DASHBOARDS["rollgraph-overview"]) == []
    assert variable_queries(DASHBOARDS["rollgraph-workflow"]) == [
        ("workflow", "rollgraph_runs_total", "workflow"),
        ("version", 'rollgraph_runs_total{workflow="$workflow"}', "version"),
    ]
    assert variable_queries(DASHBOARDS["rollgraph-experiment"]) == [
        ("experiment", "rollgraph_experiment_info", "experiment"),
        ("workflow", 'rollgraph_experiment_info{experiment="$experiment"}', "workflow"),
    ]
    experiment_variables = {
        v["name"]: v for v in DASHBOARDS["rollgraph-experiment"]["templating"]["list"]
    }
    assert experiment_variables["workflow"]["hide"] == 2  # derived from $experiment
    version = {v["name"]: v for v in DASHBOARDS["rollgraph-workflow"]["templating"]["list"]}[
        "version"
    ]
    if version.get("multi") or version.get("includeAll"):
        # Several values (or All) are sent as a regex: every matcher on it must be one.
        for query in panel_queries(DASHBOARDS["rollgraph-workflow"]):
            assert 'version="$version"' not in query.expr.replace(" ", ""), query


def test_every_query_is_filled_in_completely() -> None:
    for uid, dashboard in DASHBOARDS.items():
        values = dummy_values(dashboard)
        for query in panel_queries(dashboard):
            filled = fill(query.expr, values)
            assert "$" not in filled, (uid, query.panel, filled)


def test_links_point_at_the_dashboards() -> None:
    text = json.dumps(DASHBOARDS)
    for uid in re.findall(r"/d/([\w-]+)", text):
        assert uid in DASHBOARDS, uid


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses the expressions of a rules file without a server: each filled-in query
    # becomes a recording rule, so a syntax error fails here rather than in Grafana.
    rules = []
    where = {}
    for number, query in enumerate(all_queries()):
        dashboard = DASHBOARDS[query.dashboard]
        record = f"dashboard:query_{number}"
        where[record] = query
        rules.append({"record": record, "expr": fill(query.expr, dummy_values(dashboard))})
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- the contract with the code ----------------------------------------------------------------
def test_every_metric_a_dashboard_or_rule_names_is_exported(exported: Exported) -> None:
    sources = [(f"{q.dashboard} / {q.panel}", q.expr) for q in all_queries()] + rule_exprs()
    unknown = {where: unknown_metrics(expr, exported) for where, expr in sources}
    assert not {where: names for where, names in unknown.items() if names}
    named = set().union(*(metric_names(q.expr) for q in all_queries()))
    assert len(named) >= 20  # the scanner found the queries' metrics, not nothing


def test_every_label_a_dashboard_or_rule_uses_exists(exported: Exported) -> None:
    sources = [(f"{q.dashboard} / {q.panel}", q.expr) for q in all_queries()] + rule_exprs()
    problems = {where: label_problems(expr, exported) for where, expr in sources}
    assert not {where: found for where, found in problems.items() if found}


def test_the_exported_names_are_what_the_code_declares(exported: Exported) -> None:
    assert exported["rollgraph_runs_total"] == {"workflow", "version", "status", "mode"}
    assert exported["rollgraph_node_duration_seconds_bucket"] == {"workflow", "kind", "le"}
    assert "rollgraph_runs" not in exported  # a counter is only scraped with `_total`
    assert exported["rollgraph_experiment_info"] == {
        "experiment",
        "name",
        "workflow",
        "label",
        "baseline",
    }
    assert "rollgraph_build_info" in exported


def test_the_checkers_catch_unknown_metrics_and_labels(exported: Exported) -> None:
    assert unknown_metrics("sum(rate(rollgraph_not_a_metric[$__rate_interval]))", exported) == {
        "rollgraph_not_a_metric"
    }
    assert unknown_metrics("rollgraph_runs", exported) == {"rollgraph_runs"}  # no `_total`
    assert unknown_metrics('{__name__="rollgraph_not_a_metric"}', exported) == {
        "rollgraph_not_a_metric"
    }
    assert unknown_metrics("workflow:rollgraph_runs:rate5m", exported) == set()
    assert unknown_metrics("rollgraph_run_duration_seconds_bucket", exported) == set()
    assert label_problems('rollgraph_node_attempts_total{version="v1"}', exported) == [
        "rollgraph_node_attempts_total has no label 'version'"
    ]
    assert label_problems("sum by (name) (rate(rollgraph_runs_total[1m]))", exported)
    assert label_problems("sum(rate(rollgraph_runs_total[1m])) by (name)", exported)
    fine = "sum by (le, kind) (rate(rollgraph_node_duration_seconds_bucket{kind='x'}[1m]))"
    assert label_problems(fine, exported) == []


# -- the helpers ---------------------------------------------------------------------------
def test_metric_names_skips_labels_functions_strings_and_variables() -> None:
    expr = (
        'sum by (rollgraph_label) (rate(rollgraph_a_total{rollgraph_x="rollgraph_b"}'
        "[$__rate_interval])) / on (version) group_left () rollgraph_c offset $rollgraph_d"
        ' or label_replace(rollgraph_e, "rollgraph_f", "x", "", "") or vector(0)'
    )
    assert metric_names(expr) == {"rollgraph_a_total", "rollgraph_c", "rollgraph_e"}
    assert metric_names("rollgraph:runs:rate5m + 1e-9") == {"rollgraph:runs:rate5m"}


def test_fill_substitutes_grafana_variables() -> None:
    values = {"workflow": "greet", "version": "v1.2"}
    expr = 'rate(x{workflow="$workflow", version=~"${version}"}[$__rate_interval]) offset $__range'
    assert fill(expr, values) == 'rate(x{workflow="greet", version=~"v1.2"}[1m]) offset 5m'
    assert fill("${version:regex} ${version:raw}", values) == r"v1\.2 v1.2"
    assert fill("$__interval $__interval_ms $__range_s", {}, interval="1m30s") == "1m30s 90000 300"
    with pytest.raises(KeyError, match="experiment"):
        fill('x{experiment="$experiment"}', values)


# -- provisioning ------------------------------------------------------------------------------
def test_provisioning_files_point_at_prometheus_and_the_dashboards() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "rollgraph.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "$PROMETHEUS_URL"  # expanded by Grafana from its environment
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "rollgraph.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "$ROLLGRAPH_DASHBOARDS"
    readme = (DASHBOARDS_DIR.parent / "README.md").read_text()
    for needed in ("ROLLGRAPH_DASHBOARDS", "PROMETHEUS_URL", "docker run", "cfg:default.paths"):
        assert needed in readme, needed
