"""Benchmark: reliability under faults, kills and hostile input (issue 15, deliverable 6).

Three sections, each a function that reports ``available: false`` (with why) when the part
it calls is not in this tree, so the table always prints:

1. **chaos**: ``actors.reliability.chaos_load.run_chaos_load(ticks, seed, workdir, rate=...)``: the
   full tree paper-trading at high speed with faults injected into every actor (``--fault-
   rate`` per message, 0.01 by default), run again with new seeds until ``--faults``
   faults were injected (or a quarter of the time budget ran out). Each run's
   own invariant check is counted, and the offline auditor (``actors.reliability.audit``) reads what
   it left as well.
2. **torture**: the scenarios of ``tests/support/torture.py`` against ``botvisor run`` as a real
   subprocess: ``--kills`` SIGKILLs at random moments (a quarter of them during start-up),
   SIGSTOP/SIGCONT, a second instance beside a running one, each state file deleted or
   damaged between runs, a read-only and a full state directory (tmpfs; skipped when
   ``mount`` is not permitted). Each scenario starts from a fresh state directory warmed up
   by one short run; the start-up of that run from no state is the *baseline* printed
   beside the recovery after a kill (process start to serving: the control socket answers
   ``status`` and the start-up venue sync has checked the ledger).
3. **fuzz**: ``fuzz_configs(n, seed)``, ``fuzz_control(n, seed)``, ``fuzz_market(n, seed)``
   (hypothesis-generated configs, control requests, market data), ``--fuzz`` cases each.

Targets: 0 invariant violations at 10,000 injected faults and 100 kills; recovery after a
kill p99 <= 3 s. The default scale (``--kills 20 --faults 1500 --fuzz 300``) finishes
within 5 minutes on 2 cores (``--budget-seconds`` stops each section early, and says so:
chaos gets a quarter of it; the kill storm runs last, until the budget is spent);
``--quick`` is a short CI-like run; the long one is ``--kills 100 --faults 10000 --fuzz
1000 --budget-seconds 3600``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from actors.reliability.audit import AuditInputError, audit_state  # noqa: E402
from tests.support import torture  # noqa: E402

TARGETS = {"faults_injected": 10_000, "kills": 100, "violations": 0, "recovery_p99_s": 3.0}
FUZZERS = ("fuzz_configs", "fuzz_control", "fuzz_market")
FUZZ_MODULES = ("tests.support.fuzz_cases",)  # where the fuzzers live


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class Progress:
    """A rich progress bar on stderr (none when stderr is not a terminal, or no rich)."""

    def __init__(self, enabled: bool) -> None:
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            with contextlib.suppress(ImportError):
                from rich.console import Console
                from rich.progress import BarColumn, TimeElapsedColumn
                from rich.progress import Progress as Bar

                self._bar = Bar("[progress.description]{task.description}", BarColumn(),
                                "{task.completed}/{task.total}", TimeElapsedColumn(),
                                console=Console(stderr=True), transient=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        if self._bar is None:
            print(f"... {description}", file=sys.stderr, flush=True)
            yield lambda _n: None
            return
        with self._bar:
            task = self._bar.add_task(description, total=total)
            yield lambda n: self._bar.advance(task, n)


# -- 1. chaos ----------------------------------------------------------------------------------
def chaos_section(faults: int, ticks: int, seed: int, workdir: Path, *, deadline: float,
                  progress: Progress, rate: float | None = None) -> dict[str, Any]:
    """Chaos runs until ``faults`` faults were injected (or the deadline); ``rate``: the
    chance per message of a fault (None: the chaos load's default)."""
    try:
        run_chaos_load = importlib.import_module("actors.reliability.chaos_load").run_chaos_load
    except (ImportError, AttributeError) as exc:
        return {"available": False, "why": f"actors.reliability.chaos_load.run_chaos_load: {exc}"}
    out: dict[str, Any] = {"available": True, "runs": 0, "faults_injected": 0, "restarts": 0,
                           "escalations": 0, "hung": 0, "fills_checked": 0,
                           "orders_checked": 0, "violations": [], "cut_short": False,
                           "seconds": 0.0}
    began = time.monotonic()
    with progress.task("chaos: faults injected", faults) as advance:
        while out["faults_injected"] < faults:
            if time.monotonic() > deadline:
                out["cut_short"] = True
                break
            work = workdir / f"chaos-{out['runs']}"
            extra = {} if rate is None else {"rate": rate}
            result = run_chaos_load(ticks, seed + out["runs"], work, **extra)
            out["runs"] += 1
            for key in ("faults_injected", "restarts", "escalations", "hung",
                        "fills_checked", "orders_checked"):
                out[key] += int(result.get(key) or 0)
            out["violations"] += [f"chaos seed {seed + out['runs'] - 1}: {v}"
                                  for v in result.get("violations", [])]
            out["violations"] += _audit_chaos(work)
            advance(int(result.get("faults_injected") or 0))
            if not result.get("faults_injected"):
                out["violations"].append("chaos: a run injected no fault (is chaos on?)")
                break
    out["seconds"] = round(time.monotonic() - began, 1)
    return out


def _audit_chaos(work: Path) -> list[str]:
    """The offline auditor over what a chaos run left (its config is in ``work``)."""
    configs = sorted(work.glob("*.yaml"))
    if not configs:
        return []
    try:
        report = audit_state(configs[0], work)
    except AuditInputError as exc:
        return [f"chaos audit: config unreadable by the auditor: {exc}"]
    if report.clean or report.refused_to_trade is not None:
        return []
    return [f"chaos audit: {v}" for v in report.violations + report.missing]


# -- 2. torture --------------------------------------------------------------------------------
def torture_section(kills: int, pauses: int, seed: int, workdir: Path, *, deadline: float,
                    progress: Progress, mounts: bool = True) -> dict[str, Any]:
    """Every scenario of tests/support/torture.py, each on a freshly warmed state directory."""
    scenarios: list[tuple[str, Callable[[torture.Rig], torture.Outcome]]] = [
        ("stop_and_continue", lambda rig: torture.stop_and_continue(
            rig, pauses=pauses, seed=seed)),
        ("second_instance", torture.second_instance),
    ]
    for filename, how in (("trade_manager.json", "truncate"), ("paper_wallet.yaml", "garble"),
                          ("positions.log", "garble_middle_line"), ("breaker.db", "delete"),
                          ("ledger.db", "delete"), ("paper_exchange.db", "delete")):
        scenarios.append((f"damaged {filename} ({how})",
                          lambda rig, f=filename, h=how: torture.damaged_state(
                              rig, filename=f, how=h)))
    if mounts:
        scenarios += [("read_only_state", torture.read_only_state),
                      ("full_disk", torture.full_disk)]
    # last, so that the time budget cuts kills short rather than leave scenarios out
    scenarios.append(("kill_storm", lambda rig: torture.kill_storm(
        rig, kills=kills, seed=seed, deadline=deadline, progress=lambda: advance(1))))
    rows: list[dict[str, Any]] = []
    baseline: list[float] = []
    with progress.task("torture: kills and scenarios", kills + len(scenarios) - 1) as advance:
        for number, (name, run) in enumerate(scenarios):
            if time.monotonic() > deadline:
                rows.append({"scenario": name, "skipped": "time budget"})
                continue
            rig = torture.Rig.create(workdir / f"torture-{number}")
            try:
                baseline.append(torture.warm_up(rig))
                outcome = run(rig)
            except torture.MountUnavailable as exc:
                rows.append({"scenario": name, "skipped": f"mount not permitted: {exc}"})
                continue
            except AssertionError as exc:
                outcome = torture.Outcome(name, problems=[str(exc)[:2000]])
            if name != "kill_storm":
                advance(1)
            rows.append(_row(name, outcome))
    return {"available": True, "scenarios": rows, "baseline_start_s": baseline}


def _row(name: str, outcome: torture.Outcome) -> dict[str, Any]:
    audit = outcome.audit
    first = (outcome.problems or (audit.violations + audit.missing if audit else []) or [""])[0]
    return {
        "scenario": name, "ok": outcome.ok, "runs": outcome.runs, "kills": outcome.kills,
        "faults": outcome.faults, "recoveries_s": [round(r, 3) for r in outcome.recoveries],
        "after_kill_s": [round(r, 3) for r in outcome.after_kill],
        "fills_checked": outcome.fills_checked, "orders_checked": outcome.orders_checked,
        "violations": outcome.violations, "refused_to_trade": audit.refused_to_trade
        if audit else None, "first_problem": first.splitlines()[0][:300] if first else "",
    }


# -- 3. fuzz -----------------------------------------------------------------------------------
def _fuzzer(name: str) -> Callable[[int, int], Any] | None:
    for module in FUZZ_MODULES:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if callable(found):
            return found  # type: ignore[no-any-return]
    return None


def fuzz_section(cases: int, seed: int, progress: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {"available": False, "kinds": {}, "cases": 0, "violations": []}
    with progress.task("fuzz: kinds", len(FUZZERS)) as advance:
        for name in FUZZERS:
            fuzz = _fuzzer(name)
            if fuzz is None:
                out["kinds"][name] = "not available"
                advance(1)
                continue
            out["available"] = True
            try:
                tried, failures = _fuzz_figures(fuzz(cases, seed), cases)
            except Exception as exc:  # a fuzzer that cannot run is a finding, not a crash
                tried, failures = 0, [f"the fuzzer raised {type(exc).__name__}: {exc}"]
            out["kinds"][name] = {"cases": tried, "failures": len(failures)}
            out["cases"] += tried
            out["violations"] += [f"{name}: {f}" for f in failures]
            advance(1)
    if not out["available"]:
        out["why"] = f"none of {', '.join(FUZZERS)} in {', '.join(FUZZ_MODULES)}"
    return out


def _fuzz_figures(result: Any, asked: int) -> tuple[int, list[str]]:
    """(cases tried, failures) from what a fuzzer returned: a ``(cases, failures)`` pair
    (tests/support/fuzz_cases.py), a dict (``cases``/``tried``, ``failures``/``violations`` as a
    list or a count), or a number of cases."""
    if isinstance(result, tuple) and len(result) == 2:
        tried, bad = result
        return int(tried), [str(b) for b in bad]
    if isinstance(result, dict):
        tried = int(result.get("cases", result.get("tried", asked)))
        bad = result.get("failures", result.get("violations", []))
        failures = [str(b) for b in bad] if isinstance(bad, list | tuple) else \
            [f"{int(bad)} failure(s)"] * (1 if bad else 0)
        return tried, failures
    if isinstance(result, int) and not isinstance(result, bool):
        return result, []
    return asked, []


# -- the run -----------------------------------------------------------------------------------
def run(opts: argparse.Namespace) -> dict[str, Any]:
    began = time.monotonic()
    progress = Progress(enabled=True)
    deadline = began + opts.budget_seconds
    with tempfile.TemporaryDirectory(prefix="botvisor-reliability-", dir=opts.dir) as tmp:
        work = Path(tmp)
        # the time budget is shared out: chaos a quarter, then fuzz, torture the rest
        sections: dict[str, dict[str, Any]] = {}
        if "chaos" not in opts.skip:
            sections["chaos"] = chaos_section(opts.faults, opts.ticks, opts.seed, work,
                                              deadline=began + opts.budget_seconds / 4,
                                              progress=progress, rate=opts.fault_rate)
        if "fuzz" not in opts.skip:
            sections["fuzz"] = fuzz_section(opts.fuzz, opts.seed, progress)
        if "torture" not in opts.skip:
            sections["torture"] = torture_section(opts.kills, opts.pauses, opts.seed, work,
                                                  deadline=deadline, progress=progress,
                                                  mounts=not opts.no_mounts)
    return summarise(sections, opts, time.monotonic() - began)


def summarise(sections: dict[str, dict[str, Any]], opts: argparse.Namespace,
              elapsed: float) -> dict[str, Any]:
    chaos = sections.get("chaos", {})
    tort = sections.get("torture", {})
    fuzz = sections.get("fuzz", {})
    rows = [r for r in tort.get("scenarios", []) if "skipped" not in r]
    kill_rows = [r for r in rows if r["scenario"] == "kill_storm"]
    kills = sum(r["kills"] for r in rows)
    recoveries = [t for r in kill_rows for t in r["after_kill_s"]]
    process_faults = sum(r["faults"] for r in rows)
    violations = (len(chaos.get("violations", [])) + sum(r["violations"] for r in rows)
                  + len(fuzz.get("violations", [])))
    survived = sum(r["kills"] for r in kill_rows if r["ok"])
    baseline = tort.get("baseline_start_s", [])
    return {
        "violations": violations,
        "faults_injected": int(chaos.get("faults_injected", 0)) + process_faults,
        "chaos_faults_injected": int(chaos.get("faults_injected", 0)),
        "process_faults_injected": process_faults,
        "restarts": int(chaos.get("restarts", 0)),
        "escalations": int(chaos.get("escalations", 0)),
        "hung": int(chaos.get("hung", 0)),
        "kills": kills,
        "kills_survived": survived,
        "fills_checked": int(chaos.get("fills_checked", 0)) + sum(r["fills_checked"]
                                                                  for r in rows),
        "orders_checked": int(chaos.get("orders_checked", 0)) + sum(r["orders_checked"]
                                                                    for r in rows),
        "fuzz_cases": int(fuzz.get("cases", 0)),
        "recovery_p50_s": percentile(recoveries, 50),
        "recovery_p99_s": percentile(recoveries, 99),
        "recovery_max_s": max(recoveries) if recoveries else None,
        "recovery_samples": len(recoveries),
        "baseline_start_p50_s": percentile(baseline, 50),
        "baseline_start_p99_s": percentile(baseline, 99),
        "targets": TARGETS,
        "scale": {"kills": opts.kills, "faults": opts.faults, "fuzz": opts.fuzz,
                  "ticks": opts.ticks, "seed": opts.seed, "fault_rate": opts.fault_rate,
                  "budget_seconds": opts.budget_seconds},
        "sections": sections,
        "elapsed_s": round(elapsed, 1),
    }


# -- the table ---------------------------------------------------------------------------------
def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_table(r: dict[str, Any]) -> None:
    sections = r["sections"]
    chaos, tort, fuzz = (sections.get(k, {}) for k in ("chaos", "torture", "fuzz"))
    sc = r["scale"]
    print(f"reliability benchmark: seed {sc['seed']}, --kills {sc['kills']} --faults "
          f"{sc['faults']} --fuzz {sc['fuzz']}, {r['elapsed_s']:.0f} s "
          f"(budget {sc['budget_seconds']:.0f} s)")
    print(f"{'measure':<24}{'figure':>14}   {'target':<22}notes")

    def na(section: dict[str, Any]) -> str:
        if not section:
            return "skipped (--skip)"
        return "" if section.get("available") else f"not available: {section.get('why')}"

    chaos_note = na(chaos) or (
        f"chaos {r['chaos_faults_injected']:,} in {chaos['runs']} run(s) of {sc['ticks']:,} "
        f"ticks ({chaos['seconds']:.0f} s)"
        f"{', cut short by the budget' if chaos['cut_short'] else ''}"
        f"; process faults {r['process_faults_injected']}")
    rows = [
        ("faults injected", f"{r['faults_injected']:,}",
         f">= 10,000  {_met(r['faults_injected'] >= TARGETS['faults_injected'])}", chaos_note),
        ("restarts", f"{r['restarts']:,}", "", na(chaos) or f"hung handlers {r['hung']}"),
        ("escalations", f"{r['escalations']:,}", "", na(chaos)),
        ("kills survived", f"{r['kills_survived']} / {r['kills']}",
         f">= 100  {_met(r['kills_survived'] >= TARGETS['kills'])}",
         na(tort) or "SIGKILL at random moments, a quarter during start-up"
         + (f"; cut short by the budget ({sc['kills']} asked)" if r["kills"] < sc["kills"]
            else "")),
        ("fills checked", f"{r['fills_checked']:,}", "", "every audit: ledger vs exchange"),
        ("orders checked", f"{r['orders_checked']:,}", "", "client order ids unique"),
        ("fuzz cases tried", f"{r['fuzz_cases']:,}", "", na(fuzz) or ", ".join(
            f"{k} {v['cases'] if isinstance(v, dict) else v}"
            for k, v in fuzz.get("kinds", {}).items())),
        ("invariant violations", f"{r['violations']}", f"0  {_met(r['violations'] == 0)}",
         "see the scenarios below" if r["violations"] else ""),
        ("recovery after kill p50", _s(r["recovery_p50_s"]), "",
         f"{r['recovery_samples']} restarts; baseline (start from no state) p50 "
         f"{_s(r['baseline_start_p50_s'])}"),
        ("recovery after kill p99", _s(r["recovery_p99_s"]),
         "<= 3 s  " + ("-" if r["recovery_p99_s"] is None else
                       _met(r["recovery_p99_s"] <= TARGETS["recovery_p99_s"])),
         f"max {_s(r['recovery_max_s'])}; baseline p99 {_s(r['baseline_start_p99_s'])}; "
         "start to: control socket answers status, venue sync checked the ledger"),
    ]
    for name, figure, target, notes in rows:
        print(f"{name:<24}{figure:>14}   {target:<22}{notes}")
    if tort.get("scenarios"):
        print()
        print(f"{'scenario':<44}{'result':<8}{'runs':>5}{'kills':>6}{'viol.':>6}  "
              "first problem / refusal")
        for s in tort["scenarios"]:
            if "skipped" in s:
                print(f"{s['scenario']:<44}{'skipped':<8}{'':>5}{'':>6}{'':>6}  {s['skipped']}")
                continue
            note = s["first_problem"] if not s["ok"] else (
                f"refused: {s['refused_to_trade']}" if s["refused_to_trade"] else "")
            print(f"{s['scenario']:<44}{'ok' if s['ok'] else 'FAILED':<8}{s['runs']:>5}"
                  f"{s['kills']:>6}{s['violations']:>6}  {note[:110]}")
    for v in chaos.get("violations", [])[:10] + fuzz.get("violations", [])[:10]:
        print(f"  violation: {v[:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: --kills 3 --faults 200 --fuzz 30")
    parser.add_argument("--kills", type=int, default=None, help="SIGKILLs (default 20)")
    parser.add_argument("--faults", type=int, default=None,
                        help="chaos faults to inject, at least (default 1500)")
    parser.add_argument("--fuzz", type=int, default=None, help="cases per fuzzer (default 300)")
    parser.add_argument("--ticks", type=int, default=None,
                        help="market steps per chaos run (default 2000)")
    parser.add_argument("--fault-rate", type=float, default=0.01,
                        help="chaos: chance of a fault per message (default 0.01)")
    parser.add_argument("--pauses", type=int, default=3, help="SIGSTOP/SIGCONT pairs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget-seconds", type=float, default=270.0,
                        help="stop starting new work after this long (default 270)")
    parser.add_argument("--skip", action="append", default=[],
                        choices=("chaos", "torture", "fuzz"), help="leave a section out")
    parser.add_argument("--no-mounts", action="store_true",
                        help="skip the read-only and full-disk scenarios (they mount tmpfs)")
    parser.add_argument("--dir", default=None, help="where to make the temporary directories")
    args = parser.parse_args()
    quick = args.quick
    args.kills = args.kills if args.kills is not None else (3 if quick else 20)
    args.faults = args.faults if args.faults is not None else (200 if quick else 1500)
    args.fuzz = args.fuzz if args.fuzz is not None else (30 if quick else 300)
    args.ticks = args.ticks if args.ticks is not None else (500 if quick else 2000)
    if min(args.kills, args.faults, args.fuzz, args.pauses) < 0 or args.ticks < 1 \
            or args.budget_seconds <= 0:
        parser.error("--kills, --faults, --fuzz, --pauses must be >= 0; --ticks and "
                     "--budget-seconds > 0")
    logging.basicConfig(level=logging.ERROR)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
