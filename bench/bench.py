#!/usr/bin/python3
"""Benchmark: caffpy end to end on generated parties, next to a one-process-per-operation baseline.

For each party size N it prints wall and CPU seconds, keys per second, gpg
processes per key and peak memory, for caffpy and for the baseline (the
unavoidable work done naively: one import, one --quick-sign-key per key; one
export, one encryption and one sendmail call per mail), measured in the same
run on the same party, each side three times in turn (the median run counts, so
a slow spell of the machine does not favour one side). Mails go to a recording
sendmail. A flooded key (10 000 third-party certifications) is timed on its
own. Results are written as JSON to bench-results/ so commits can be compared.

    make bench                 # N = 10 50 100 200 500
    bench/bench.py --sizes 10 50
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))   # crafting.py, for the flooded key

from caffpy import demo  # noqa: E402
from caffpy.colons import parse_keys  # noqa: E402

PYTHON = "/usr/bin/python3"
RECORDER = """#!/bin/sh
# A sendmail that records: message on stdin, recipient is the last argument.
for last; do :; done
cat > "%s/$$.$last.eml"
"""
# Runs a command and reports its children's CPU time and peak memory on stderr.
MEASURE = ("import resource, subprocess, sys\n"
           "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
           "stderr=open(sys.argv[0] + '.err', 'w')).returncode\n"
           "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
           "print(rc, r.ru_utime + r.ru_stime, r.ru_maxrss, file=sys.stderr)\n")


def measure(cmd, env, workdir):
    """(exit status, wall s, cpu s, peak MiB, stderr of cmd) for cmd, in a fresh process."""
    script = os.path.join(workdir, "measure.py")
    with open(script, "w") as handle:
        handle.write(MEASURE)
    start = time.perf_counter()
    proc = subprocess.run([PYTHON, script] + cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    rc, cpu, rss = proc.stderr.split()[-3:]
    with open(script + ".err") as handle:
        err = handle.read()
    return int(rc), wall, float(cpu), int(rss) / 1024, err


def recorder(base):
    outdir = os.path.join(base, "sent")
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(base, "sendmail")
    with open(path, "w") as handle:
        handle.write(RECORDER % outdir)
    os.chmod(path, 0o755)
    return path, outdir


def run_caffpy(party, base, sendmail):
    config = demo.write_config(party, sendmail=sendmail)
    env = dict(os.environ, GNUPGHOME=party.user_home, CAFFPY_CONFIG_FILES=config,
               PYTHONPATH=ROOT, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    cmd = [PYTHON, "-m", "caffpy", "--debug", "--batch", "-m", "yes", "-R",
           "--key-file", party.key_file] + party.fingerprints
    rc, wall, cpu, peak, err = measure(cmd, env, base)
    calls = re.search(r"gpg processes started: (\d+)", err)
    if rc != 0:
        print(err[-2000:], file=sys.stderr)
    return {"exit": rc, "wall": wall, "cpu": cpu, "peak_mib": peak,
            "gpg_processes": int(calls.group(1)) if calls else None}


BASELINE = r'''
import os, subprocess, sys, json
home, user, sendmail, plan = sys.argv[1], sys.argv[2], sys.argv[3], json.load(open(sys.argv[4]))
gpg = ["gpg", "--homedir", home, "--batch", "--no-tty", "--yes", "--trust-model", "always"]
calls = 0
def run(args, data=b""):
    global calls
    calls += 1
    return subprocess.run(gpg + args, input=data, capture_output=True).stdout
for key in plan["keys"]:
    run(["--import", key["file"]])
    run(["--local-user", plan["signers"][0] + "!", "--local-user", plan["signers"][1] + "!",
         "--quick-sign-key", key["fpr"]])
    for address in key["mails"]:
        exported = run(["--armor", "--export-filter", "keep-uid=mbox=" + address, "--export", key["fpr"]])
        encrypted = run(["--armor", "--encrypt", "-r", key["fpr"]], exported)
        subprocess.run([sendmail, "-oi", "-f", "signer@example.org", "--", address], input=encrypted)
print(calls, file=open(sys.argv[4] + ".calls", "w"))
'''


def run_baseline(party, base, sendmail):
    """The naive one-process-per-operation pipeline, in a home like caffpy's."""
    home = os.path.join(base, "b")
    os.makedirs(home, mode=0o700)
    gpg = ["gpg", "--homedir", home, "--batch", "--quiet"]
    user_socket = subprocess.run(["gpgconf", "--homedir", party.user_home, "--list-dirs",
                                  "agent-socket"], capture_output=True, text=True).stdout.strip()
    os.symlink(user_socket, os.path.join(home, "S.gpg-agent"))
    own = subprocess.run(["gpg", "--homedir", party.user_home, "--export"] + party.signers,
                         capture_output=True, check=True).stdout
    subprocess.run(gpg + ["--import"], input=own, check=True, capture_output=True)
    plan = {"signers": party.signers, "keys": []}
    usable = {k.fingerprint for k in parse_keys(subprocess.run(
        ["gpg", "--homedir", party.participants_home, "--with-colons", "--fixed-list-mode",
         "--list-keys"], capture_output=True).stdout) if k.usable}
    for participant in party.participants:
        path = os.path.join(base, "k-%s.asc" % participant.fingerprint)
        with open(path, "wb") as handle:
            handle.write(subprocess.run(["gpg", "--homedir", party.participants_home, "--export",
                                         participant.fingerprint], capture_output=True).stdout)
        mails = participant.mailable if participant.fingerprint in usable else []
        plan["keys"].append({"fpr": participant.fingerprint, "file": path, "mails": mails})
    plan_path = os.path.join(base, "plan.json")
    with open(plan_path, "w") as handle:
        json.dump(plan, handle)
    script = os.path.join(base, "baseline.py")
    with open(script, "w") as handle:
        handle.write(BASELINE)
    rc, wall, cpu, peak, err = measure([PYTHON, script, home, party.user_home, sendmail,
                                        plan_path], dict(os.environ), base)
    with open(plan_path + ".calls") as handle:
        calls = int(handle.read())
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True)
    return {"exit": rc, "wall": wall, "cpu": cpu, "peak_mib": peak, "gpg_processes": calls}


def flooded_party(base, count):
    """A party of one key whose user ID carries `count` third-party certifications."""
    import crafting
    party = demo.make_party(base, 1)
    fpr = party.fingerprints[0]
    exported = subprocess.run(["gpg", "--homedir", party.participants_home, "--export", fpr],
                              capture_output=True, check=True).stdout
    uid = ("%s <%s>" % (party.participants[0].name, party.participants[0].mailable[0])).encode()
    flooded = crafting.flood_export(exported, uid, count)
    with open(party.key_file, "wb") as handle:
        handle.write(flooded)
    return party


def _one(side, party, base):
    """One timed run of caffpy or the baseline, from a fresh caffhome / home."""
    for leftover in ("c", "b", "sent"):
        shutil.rmtree(os.path.join(base, leftover), ignore_errors=True)
    sendmail, sent = recorder(base)
    result = (run_caffpy if side == "caffpy" else run_baseline)(party, base, sendmail)
    result["mails"] = len(os.listdir(sent))
    return result


def bench_size(n, repeat):
    """Both sides `repeat` times, alternating, so that a slow spell of the machine
    hits both; each side's median run (by wall time) is reported."""
    base = tempfile.mkdtemp(prefix="cp-b", dir="/tmp")
    try:
        started = time.perf_counter()
        party = demo.make_party(base, n)
        generated = time.perf_counter() - started
        # The user's gpg-agent runs already, as it does for someone who uses gpg:
        # neither side pays for starting it.
        subprocess.run(["gpg-connect-agent", "--homedir", party.user_home, "/bye"],
                       capture_output=True, check=True)
        runs = {"caffpy": [], "baseline": []}
        for _ in range(repeat):
            for side in runs:
                runs[side].append(_one(side, party, base))
        demo.stop_agents(party)
        row = {"n": n, "generate_s": generated, "runs": runs}
        for side, results in runs.items():
            row[side] = sorted(results, key=lambda r: r["wall"])[len(results) // 2]
        return row
    finally:
        shutil.rmtree(base, ignore_errors=True)


def bench_flood(count):
    results = {}
    for label, flood in (("plain", 0), ("flooded", count)):
        base = tempfile.mkdtemp(prefix="cp-f", dir="/tmp")
        try:
            party = flooded_party(base, flood) if flood else demo.make_party(base, 1)
            sendmail, sent = recorder(base)
            results[label] = run_caffpy(party, base, sendmail)
            results[label]["mails"] = len(os.listdir(sent))
            demo.stop_agents(party)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    results["certifications"] = count
    results["added_s"] = results["flooded"]["wall"] - results["plain"]["wall"]
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100, 200, 500])
    parser.add_argument("--flood", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each side per size; the median is reported")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench-results"))
    args = parser.parse_args()
    # Bytecode as an installed package has it (dh_python3 compiles at install): without
    # it, and with PYTHONDONTWRITEBYTECODE set, every run would compile caffpy anew.
    subprocess.run([PYTHON, "-m", "compileall", "-q", os.path.join(ROOT, "caffpy")], check=True)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    results = {"commit": commit, "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "machine": "%s, %d cores" % (platform.machine(), os.cpu_count()), "sizes": []}
    print("%5s | %-44s | %-44s | %s" % ("N", "caffpy: wall s / cpu s / keys/s / gpg per key / MiB",
                                       "baseline: wall s / cpu s / keys/s / gpg per key / MiB",
                                       "ratio"))
    for n in args.sizes:
        row = bench_size(n, args.repeat)
        results["sizes"].append(row)
        cells = []
        for side in ("caffpy", "baseline"):
            r = row[side]
            cells.append("%7.2f %7.2f %7.1f %6.2f %6.0f  (%d mails, exit %d)" % (
                r["wall"], r["cpu"], n / r["wall"], (r["gpg_processes"] or 0) / n,
                r["peak_mib"], r["mails"], r["exit"]))
        row["ratio"] = row["caffpy"]["wall"] / row["baseline"]["wall"]
        print("%5d | %s | %s | %.2f" % (n, cells[0], cells[1], row["ratio"]), flush=True)
    if args.flood:
        flood = bench_flood(args.flood)
        results["flood"] = flood
        print("flooded key (%d third-party certifications): %.2f s vs %.2f s plain, adds %.2f s;"
              " %d mail(s)" % (args.flood, flood["flooded"]["wall"], flood["plain"]["wall"],
                               flood["added_s"], flood["flooded"]["mails"]))
    caff = shutil.which("caff")
    results["caff"] = ("installed at %s (not run by this script)" % caff) if caff else \
        "signing-party not installed (measured elsewhere: about 0.35 s per key)"
    print("caff 2.11:", results["caff"])
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "%s-%s.json" % (results["date"].replace(":", ""), commit))
    with open(path, "w") as handle:
        json.dump(results, handle, indent=1)
    print("results written to", path)


if __name__ == "__main__":
    main()
