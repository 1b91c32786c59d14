"""tiercli.cache.metrics on the real OpenTelemetry SDK: exact counts after a fixed sequence of
calls, read back with an InMemoryMetricReader; and a no-op without opentelemetry-api."""

import subprocess
import sys

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from tiercli.cache import metrics as metrics_module
from tiercli.cache.metrics import Metrics


def read(reader):
    """{instrument name: {frozenset(attributes): value}} (a histogram's value: (count, sum, min, max))."""
    seen = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "tiercli.cache"
            for metric in scope.metrics:
                points = seen.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    key = frozenset(point.attributes.items())
                    if hasattr(point, "value"):
                        points[key] = point.value
                    else:
                        points[key] = (point.count, round(point.sum, 6), point.min, point.max)
    return seen


def attrs(**kw):
    return frozenset(kw.items())


def test_counts_after_a_fixed_sequence_of_calls():
    reader = InMemoryMetricReader()
    metrics = Metrics(MeterProvider(metric_readers=[reader]))
    assert metrics.enabled
    # live mode
    metrics.call("miss", "intent", cross_lead=False, similarity=0.5, mismatched=None)
    metrics.call("l1", "intent", cross_lead=False, similarity=None, mismatched=None)
    metrics.call("l1", "intent", cross_lead=True, similarity=None, mismatched=None)
    metrics.call("l2", "scoring", cross_lead=False, similarity=None, mismatched=None)
    metrics.call("l3", "intent", cross_lead=True, similarity=0.9, mismatched=None)
    metrics.call("bypass", "scoring", cross_lead=False, similarity=None, mismatched=None)
    metrics.call("miss", "scoring", cross_lead=False, similarity=float("nan"), mismatched=None)
    # shadow mode: would-be outcomes with their mismatch flags (2: unparsable, still a mismatch)
    metrics.call("l3", "intent", cross_lead=False, similarity=0.8, mismatched=1)
    metrics.call("l1", "scoring", cross_lead=False, similarity=None, mismatched=2)
    metrics.call("l1", "scoring", cross_lead=False, similarity=None, mismatched=0)
    metrics.redis_failure("l2")
    metrics.redis_failure("l2")
    metrics.redis_failure("l3")

    seen = read(reader)
    assert seen["tiercli.cache.hits"] == {
        attrs(tier="l1", task="intent"): 2,
        attrs(tier="l2", task="scoring"): 1,
        attrs(tier="l3", task="intent"): 2,
        attrs(tier="l1", task="scoring"): 2,
    }
    assert seen["tiercli.cache.misses"] == {attrs(task="intent"): 1, attrs(task="scoring"): 1}
    assert seen["tiercli.cache.bypasses"] == {attrs(task="scoring"): 1}
    assert seen["tiercli.cache.cross_lead_hits"] == {
        attrs(tier="l1", task="intent"): 1, attrs(tier="l3", task="intent"): 1}
    assert seen["tiercli.cache.shadow_mismatches"] == {attrs(task="intent"): 1, attrs(task="scoring"): 1}
    assert seen["tiercli.cache.redis_failures"] == {attrs(tier="l2"): 2, attrs(tier="l3"): 1}
    # None and NaN (L3 not consulted) are not recorded
    assert seen["tiercli.cache.l3_best_similarity"] == {attrs(task="intent"): (3, 2.2, 0.5, 0.9)}
    assert len(seen) == 7


def test_an_unknown_outcome_is_an_error():
    metrics = Metrics(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    with pytest.raises(ValueError, match="'hit'"):
        metrics.call("hit", "intent", cross_lead=False, similarity=None, mismatched=None)


def test_without_opentelemetry_every_method_is_a_no_op():
    metrics_path = metrics_module.__file__
    # a fresh interpreter where importing opentelemetry fails, as without the extra; the module
    # is loaded from its file alone, since the package around it may import what does use it
    code = (
        "import sys, importlib.util; sys.modules['opentelemetry'] = None\n"
        f"spec = importlib.util.spec_from_file_location('metrics', {metrics_path!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "m = module.Metrics()\n"
        "assert not m.enabled\n"
        "m.call('l1', 'intent', cross_lead=True, similarity=0.9, mismatched=1)\n"
        "m.redis_failure('l2')\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
