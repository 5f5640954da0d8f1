"""PII guard benchmark: the cost of a scan and of the first scan in a fresh process, and the
guard's recall and false alarms on the case-note corpus (protocol.md §8.5.7, §8.5.8).

* **Per note**: the corpus sentences (both parts) strung together and cut into 300-character
  notes; after a warm-up, the CPU time (``time.process_time``) of scanning every note, in
  rounds; the median round's time per note in µs, and the slowest round's.  Target: ≤ 2 ms.
* **Import to first answer**: wall time of a fresh ``python -c "from schakel.protocol.pii import
  scan; scan(note)"`` (the word lists are read on that first scan), against the same run's
  ceiling — a bare interpreter (``python -c pass``) — and ``import schakel.protocol.pii`` alone;
  medians of several alternating runs.  Target: ≤ 1 s.  Also the lists' build time inside
  a process.
* **A command's start**: ``schakel --help`` as a fresh process, with numpy importable (it is
  installed as a dependency of deduce) and with numpy hidden, because sqlite-utils imports
  numpy whenever it can, and the command line imports sqlite-utils (ADR 0016).
* **Corpus**: recall, false-alarm rate and span precision on the tuning and held-out parts.

Writes ``bench/results/pii.json``.  Run: ``.venv/bin/python bench/bench_pii.py`` (``make
bench``); ``--quick`` does fewer rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from schakel.protocol import pii_lexicon  # noqa: E402
from schakel.protocol.pii import scan  # noqa: E402
from tests.pii_corpus import PARTS, load, measure  # noqa: E402

NOTE_CHARS = 300
FIRST_NOTE = "Mevrouw Jansen op Soesterweg 12 laat niemand binnen; dochter Anja belt morgen."


def notes() -> list[str]:
    text = " ".join(s.text for part in PARTS for s in load(part))
    return [text[i:i + NOTE_CHARS] for i in range(0, len(text) - NOTE_CHARS + 1, NOTE_CHARS)]


def per_note(rounds: int) -> dict[str, object]:
    batch = notes()
    for note in batch:          # warm-up: the lists are read, the caches filled
        scan(note)
    per_round = []
    for _ in range(rounds):
        began = time.process_time()
        for note in batch:
            scan(note)
        per_round.append((time.process_time() - began) / len(batch))
    return {"notes": len(batch), "chars_per_note": NOTE_CHARS, "rounds": rounds,
            "median_us": round(statistics.median(per_round) * 1e6, 1),
            "slowest_round_us": round(max(per_round) * 1e6, 1), "target_us": 2000}


def wall(args: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, cwd=ROOT, timeout=120)
    return time.perf_counter() - began


def fresh_processes(runs: int) -> dict[str, object]:
    py = sys.executable
    cases = {
        "bare_interpreter": [py, "-c", "pass"],
        "import_only": [py, "-c", "import schakel.protocol.pii"],
        "import_to_first_answer": [py, "-c", f"from schakel.protocol.pii import scan; "
                                            f"assert scan({FIRST_NOTE!r})"],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):           # alternate, so that a busy moment hits all alike
        for name, args in cases.items():
            times[name].append(wall(args))
    out: dict[str, object] = {name: {"median_s": round(statistics.median(t), 3),
                                     "max_s": round(max(t), 3), "runs": len(t)}
                              for name, t in times.items()}
    first = statistics.median(times["import_to_first_answer"])
    out["first_answer_minus_bare_interpreter_s"] = round(
        first - statistics.median(times["bare_interpreter"]), 3)
    out["target_s"] = 1.0
    builds = []
    for _ in range(max(3, runs // 2)):
        began = time.perf_counter()
        pii_lexicon._build()
        builds.append(time.perf_counter() - began)
    out["lists_build_in_process_median_s"] = round(statistics.median(builds), 3)
    return out


def command_start(runs: int) -> dict[str, object]:
    code = ("import sys\n{hide}sys.argv = ['schakel', '--help']\n"
            "from schakel.cli.main import main\nmain()\n")
    cases = {"schakel_help_numpy_importable": code.format(hide=""),
             "schakel_help_numpy_hidden": code.format(hide="sys.modules['numpy'] = None\n")}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, source in cases.items():
            times[name].append(wall([sys.executable, "-c", source]))
    return {name: {"median_s": round(statistics.median(t), 3), "runs": len(t)}
            for name, t in times.items()}


def corpus() -> dict[str, object]:
    return {part: measure(load(part), scan).as_dict() for part in PARTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and runs")
    quick = parser.parse_args().quick
    result = {
        "deduce": pii_lexicon.DEDUCE_VERSION,
        "per_note": per_note(rounds=5 if quick else 20),
        "fresh_process": fresh_processes(runs=3 if quick else 9),
        "command_start": command_start(runs=3 if quick else 7),
        "corpus": corpus(),
    }
    path = write_result("pii", result)
    print(f"wrote {path.relative_to(ROOT)}")
    print(json.dumps({k: result[k] for k in ("per_note", "fresh_process", "corpus")}, indent=1))


if __name__ == "__main__":
    main()
