#!/usr/bin/python3
"""Compare two results of bench/bench.py (older first): per party size, caffpy's
wall time, its ratio to the baseline (measured in the same run, so comparable
across machines and days) and gpg processes per key.

    bench/compare.py bench-results/OLD.json bench-results/NEW.json
"""

import json
import sys


def rows(path):
    with open(path) as handle:
        results = json.load(handle)
    return results["commit"], {row["n"]: row for row in results["sizes"]}


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 64
    (old_commit, old), (new_commit, new) = rows(argv[0]), rows(argv[1])
    print("%5s | %-27s | %-21s | %s" % ("N", "caffpy wall s %s -> %s" % (old_commit, new_commit),
                                       "ratio to baseline", "gpg per key"))
    for n in sorted(set(old) & set(new)):
        a, b = old[n], new[n]
        change = (b["caffpy"]["wall"] / a["caffpy"]["wall"] - 1) * 100
        print("%5d | %6.2f -> %6.2f (%+5.1f%%)   | %5.2f -> %5.2f         | %.2f -> %.2f" % (
            n, a["caffpy"]["wall"], b["caffpy"]["wall"], change, a["ratio"], b["ratio"],
            (a["caffpy"]["gpg_processes"] or 0) / n, (b["caffpy"]["gpg_processes"] or 0) / n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
