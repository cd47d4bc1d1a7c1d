"""How much of the table the text reader gets back from each form of tcpdump text, field by field.

    python benchmarks/text_agreement.py [--seeds 3] [--corpus] [--forms "-nn;-nn -e"] [--detail]

For each capture (the generated protocol mix of tests/sources/protocol_mix.py on every link type it covers,
one per seed; with --corpus also the real pcaps of tests/data/corpus), the installed tcpdump prints it in each
form users type, the text reader reads the text back, and the table is compared with cniscope's own decode
of the capture, field for field (tests/sources/textdiff.py says what is counted). Prints one line per form:
the share of fields that agree over all captures, and the weakest columns. The target is >= 98% per form.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cniscope.ingest import read  # noqa: E402
from cniscope.models import TUNNEL_PORTS  # noqa: E402
from cniscope.packets.schema import Tunnel  # noqa: E402
from cniscope.sources import InputSpec  # noqa: E402
from tests.sources import protocol_mix  # noqa: E402
from tests.sources.textdiff import agreement, printed, read_text, share  # noqa: E402

FORMS = [
    "-nn", "-nn -e", "-nn -v", "-nn -vv", "", "-v", "-nn -#", "-# -tttt -e -v -nn", "-nn -q", "-nn -t", "-nn -tt",
    "-nn -ttt", "-nn -tttt", "-nn -ttttt", "-nn -e -v", "-nn -e -vv -tttt", "-nn -S", "-n", "-q", "-e", "-#",
]
CORPUS = REPO / "tests" / "data" / "corpus"


def captures(tmp: Path, seeds: int, corpus: bool) -> list[Path]:
    out = []
    for seed in range(1, seeds + 1):
        for kind in protocol_mix.KINDS:
            out.append(protocol_mix.write(tmp / f"{kind}-{seed}.pcap", kind, seed))
    if corpus:
        out += sorted(CORPUS.glob("*.pcap"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--corpus", action="store_true", help="also the corpus pcaps (tests/data/corpus)")
    parser.add_argument("--only-corpus", action="store_true")
    parser.add_argument("--forms", default=None, help="forms separated by ';' (default: every form users type)")
    parser.add_argument("--detail", action="store_true", help="print the first disagreements of each capture")
    args = parser.parse_args()
    forms = args.forms.split(";") if args.forms else FORMS
    with tempfile.TemporaryDirectory() as tmp:
        paths = sorted(CORPUS.glob("*.pcap")) if args.only_corpus else captures(Path(tmp), args.seeds, args.corpus)
        worst = 1.0
        measured: set[str] = set()
        skipped: set[str] = set()
        for form in forms:
            flags = form.split()
            agree: Counter[str] = Counter()
            total: Counter[str] = Counter()
            for path in paths:
                ports = TUNNEL_PORTS.with_port(6080, Tunnel.VXLAN) if "vxlan6080" in path.name else TUNNEL_PORTS
                decoded = read([InputSpec(str(path))]).table if ports is TUNNEL_PORTS else None
                if decoded is None:  # the NGFW capture: tcpdump decodes 6080 as VXLAN only when told (-T)
                    skipped.add(path.name)
                    continue
                measured.add(path.name)
                text, _ = read_text(printed(path, flags), path.name)
                # -i any names interfaces from this machine's list; a pcap names none
                a, t, examples = agreement(text, decoded, flags, skip=("iface",))
                agree.update(a)
                total.update(t)
                if args.detail and examples:
                    print(f"  {form or '(names)'} {path.name}: " + "; ".join(examples[:6]))
            figure = share(agree, total)
            worst = min(worst, figure)
            weak = sorted((agree[c] / total[c], c) for c in total if total[c] and agree[c] < total[c])[:4]
            weakest = ", ".join(f"{c} {100 * s:.1f}%" for s, c in weak)
            print(f"{form or '(names: no -n)':<22} {100 * figure:6.2f}%  of {sum(total.values()):>7} fields"
                  + (f"   weakest: {weakest}" if weakest else ""))
        print(f"worst form: {100 * worst:.2f}% ({len(measured)} captures"
              + (f"; left out, their tunnel port is not one tcpdump knows: {', '.join(sorted(skipped))}" if skipped else "")
              + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
