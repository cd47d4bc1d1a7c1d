"""What `--pcapng` and `--html` cost on top of `cniscope analyze --json`, against tshark rewriting the same file.

    python benchmarks/report_outputs.py [--packets 200000] [--rounds 1]

Same generated LINUX_SLL2 capture as benchmarks/decode.py. In one run, whole-process
wall time of:
  json     cniscope analyze --json IN
  pcapng   cniscope analyze --json --pcapng OUT IN   (every frame copied with its comment)
  html     cniscope analyze --json --html OUT IN
  tshark   tshark -r IN -F pcapng -w OUT             (the same frames into pcapng, no analysis, no comments)
Prints the extra seconds of --pcapng and --html over --json, the ratio of the
--pcapng extra to tshark's whole rewrite, and the HTML file's size. Whole-process
differences are noisy on a shared machine, so the writers are also timed
in-process on one analysed report (html.write, pcapng_out.write).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode import CNISCOPE, Run, capture_for, timed, warm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    path = capture_for(args.packets, 262144)
    warm(path)
    with tempfile.TemporaryDirectory(prefix="cniscope-bench-") as tmp:
        out = Path(tmp)
        commands = {
            "json": [str(CNISCOPE), "analyze", "--json", str(path)],
            "pcapng": [str(CNISCOPE), "analyze", "--json", "--pcapng", str(out / "annotated.pcapng"), str(path)],
            "html": [str(CNISCOPE), "analyze", "--json", "--html", str(out / "report.html"), str(path)],
            "tshark": ["tshark", "-r", str(path), "-F", "pcapng", "-w", str(out / "tshark.pcapng")],
        }
        best: dict[str, Run] = {}
        for round_ in range(args.rounds):
            for tool, argv in commands.items():
                run = timed(tool, argv)
                print(f"  round {round_ + 1} {tool:7s} {run.seconds:8.2f} s  {run.peak_bytes / 1e6:8.0f} MB", flush=True)
                if run.status not in (0, 1):
                    raise SystemExit(f"{tool} failed")
                if tool not in best or run.seconds < best[tool].seconds:
                    best[tool] = run
        html_mb = (out / "report.html").stat().st_size / 1e6
        pcapng_mb = (out / "annotated.pcapng").stat().st_size / 1e6
    writers = in_process(path)
    extra_pcapng = best["pcapng"].seconds - best["json"].seconds
    extra_html = best["html"].seconds - best["json"].seconds
    print(f"\n{args.packets:,} packets ({path.stat().st_size / 1e6:.0f} MB): analyze --json {best['json'].seconds:.2f} s; "
          f"--pcapng adds {extra_pcapng:.2f} s ({pcapng_mb:.0f} MB written), tshark's plain rewrite to pcapng takes "
          f"{best['tshark'].seconds:.2f} s (--pcapng extra / tshark = {extra_pcapng / best['tshark'].seconds:.2f}); "
          f"--html adds {extra_html:.2f} s for a {html_mb:.1f} MB page", flush=True)
    print(f"in-process on the same report: pcapng_out.write {writers['pcapng']:.2f} s "
          f"({writers['pcapng'] / best['tshark'].seconds:.2f}x tshark's rewrite), html.write {writers['html']:.2f} s", flush=True)


def in_process(path: Path) -> dict[str, float]:
    import time

    from cniscope.analyze import analyze
    from cniscope.report import html, pcapng_out
    from cniscope.sources import InputSpec

    report = analyze([InputSpec(str(path))])
    with tempfile.TemporaryDirectory(prefix="cniscope-bench-") as tmp:
        started = time.perf_counter()
        pcapng_out.write(report, str(Path(tmp) / "annotated.pcapng"))
        middle = time.perf_counter()
        html.write(report, str(Path(tmp) / "report.html"))
        ended = time.perf_counter()
    return {"pcapng": middle - started, "html": ended - middle}


if __name__ == "__main__":
    main()
