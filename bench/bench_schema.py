"""Schema validation benchmark: the CPU one ``schakel.protocol.schema.validate`` costs per
object on the append and sync hot path, against plain ``jsonschema`` in the same run.

* **Objects**: the example objects of ``tests/test_schema.py`` (every object the object tests
  build, and the protocol's vectors) of the kinds a signed append, a sync page and an audit
  append validate: ``envelope``, ``event`` (an envelope's signed part), ``case-header``,
  ``audit-entry`` and ``tree-head``.  Also one refused ``event`` (a wrong ``seq``): a refusal
  is worded by jsonschema whatever validator gives the verdict.
* **Shipped**: ``schema.validate(kind, value)``, the function every caller uses, warm (its
  validators built before the clock runs).
* **Plain jsonschema** (the ceiling of the other choice): a ``Draft202012Validator`` built once
  per schema over a registry of the schema documents, with jsonschema's own format checker;
  and the same with every ``$ref`` inlined once (``jsonschema_rs.dereference``), its fastest
  use.  Each is checked to accept the same values as the shipped function before it is timed.

* **Baseline** (``--baseline FILE``): another version of ``protocol/schema.py``, e.g. an
  earlier commit's (``git show COMMIT:protocol/schema.py > FILE``), loaded beside the shipped
  one and timed in the same rounds, so that a busy machine slows both alike.

Thread CPU time (``time.thread_time``) per call, the median of alternating rounds; each ratio
is the other's time over the shipped function's (above 1: the shipped one is faster).
Writes ``bench/results/schema.json``.  Run: ``.venv/bin/python bench/bench_schema.py``
(``make bench``); ``--quick`` does fewer rounds and writes nothing.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import jsonschema  # noqa: E402
from referencing import Registry, Resource  # noqa: E402
from referencing.jsonschema import DRAFT202012  # noqa: E402

from bench.common import write_result  # noqa: E402
from schakel.protocol import schema  # noqa: E402
from schakel.protocol.errors import MalformedError  # noqa: E402
from tests.test_schema import EXAMPLES  # noqa: E402

KINDS = ("envelope", "event", "case-header", "audit-entry", "tree-head")


def per_call_us(check: Callable[[Any], object], values: list[Any], calls: int) -> float:
    """Thread CPU µs per call of ``check`` over ``values``, ``calls`` calls in all."""
    batch = (values * (calls // len(values) + 1))[:calls]
    began = time.thread_time()
    for value in batch:
        check(value)
    return (time.thread_time() - began) / calls * 1e6


def load_baseline(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("schema_baseline", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refuses(kind: str, module: Any) -> Callable[[Any], object]:
    def check(value: Any) -> None:
        try:
            module.validate(kind, value)
        except MalformedError:
            return
        raise AssertionError("a broken value was accepted")
    return check


def plain_validators(kind: str) -> tuple[Any, Any]:
    """Plain jsonschema for ``kind``: over a registry, and with its references inlined."""
    documents = schema.schema_documents()
    registry: Registry[Any] = Registry().with_resources(
        (d["$id"], Resource.from_contents(d, default_specification=DRAFT202012))
        for d in documents.values())
    formats = jsonschema.Draft202012Validator.FORMAT_CHECKER
    over_registry = jsonschema.Draft202012Validator(documents[kind], registry=registry,
                                                    format_checker=formats)
    import jsonschema_rs
    rs_registry = jsonschema_rs.Registry([(d["$id"], d) for d in documents.values()])
    inlined = jsonschema_rs.dereference(documents[kind], registry=rs_registry)
    return over_registry, jsonschema.Draft202012Validator(inlined, format_checker=formats)


def run(rounds: int, calls: int, baseline: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cases: list[tuple[str, str, list[Any], bool]] = []
    for kind in KINDS:
        cases.append((kind, kind, [v for t, v in EXAMPLES if t == kind], True))
    refused = []
    for value in (v for t, v in EXAMPLES if t == "event"):
        broken = copy.deepcopy(value)
        broken["seq"] = "1"
        refused.append(broken)
    cases.append(("event, refused", "event", refused, False))
    for label, kind, values, valid in cases:
        assert values, label
        over_registry, inlined = plain_validators(kind)
        checks = {name: (lambda v, k=kind, m=module: m.validate(k, v)) if valid
                  else refuses(kind, module)
                  for name, module in (("shipped", schema), ("baseline", baseline)) if module}
        for value in values:
            for check in checks.values():
                check(value)                                 # builds and warms up
            assert over_registry.is_valid(value) is valid is inlined.is_valid(value), label
        timings: dict[str, list[float]] = {
            **{name: [] for name in checks}, "jsonschema_registry": [], "jsonschema_inlined": []}
        plain_calls = max(calls // 20, 20)
        for _ in range(rounds):
            for name, check in checks.items():
                timings[name].append(per_call_us(check, values, calls))
            timings["jsonschema_registry"].append(
                per_call_us(over_registry.is_valid, values, plain_calls))
            timings["jsonschema_inlined"].append(
                per_call_us(inlined.is_valid, values, plain_calls))
        medians = {k: round(statistics.median(v), 2) for k, v in timings.items()}
        out[label] = {
            "values": len(values), "valid": valid,
            "median_us": medians,
            "min_us": {k: round(min(v), 2) for k, v in timings.items()},
            "ratio_jsonschema_registry_to_shipped": round(
                medians["jsonschema_registry"] / medians["shipped"], 1),
            "ratio_jsonschema_inlined_to_shipped": round(
                medians["jsonschema_inlined"] / medians["shipped"], 1)}
        if "baseline" in medians:
            out[label]["ratio_baseline_to_shipped"] = round(
                medians["baseline"] / medians["shipped"], 2)
        against = f"baseline {medians['baseline']:6.2f} µs   " if "baseline" in medians else ""
        print(f"{label:<16} shipped {medians['shipped']:8.2f} µs   {against}jsonschema: registry "
              f"{medians['jsonschema_registry']:8.1f} µs, inlined "
              f"{medians['jsonschema_inlined']:8.1f} µs", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds; nothing written")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another protocol/schema.py, timed in the same rounds")
    options = parser.parse_args()
    baseline = load_baseline(options.baseline) if options.baseline else None
    load = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    rounds, calls = (3, 2_000) if options.quick else (15, 20_000)
    figures = run(rounds, calls, baseline)
    if options.quick:
        return
    result = {"what": "thread CPU per schema.validate call on hot-path objects, against plain "
                      "jsonschema (built once per schema) in the same run",
              "shipped_validator": schema.__doc__.strip().splitlines()[0] if schema.__doc__
              else "", "jsonschema_version": version("jsonschema"),
              "baseline": str(options.baseline) if options.baseline else None,
              "load_average": load, "rounds": rounds, "calls_per_round": calls,
              "kinds": figures}
    path = write_result("schema", result)
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
