#!/usr/bin/python3
"""Benchmark: caffpy end to end on generated parties, next to a one-process-per-operation baseline.

The parties are caffpy.demo's mix (several user IDs, revoked and address-less
ones, photo IDs, sign-only, expired and RSA 3072 keys, non-ASCII names), made
once per size. For each N it prints wall and CPU seconds, keys per second, gpg
processes per key and peak memory, for caffpy and for the baseline (the
unavoidable work done naively: one import, one --quick-sign-key per key; one
export, one encryption and one sendmail call per mail), measured in the same
run on the same party, each side three times in turn (the median run counts, so
a slow spell of the machine does not favour one side). Mails go to a recording
sendmail. A flooded key (10 000 third-party certifications) is timed on its
own. When signing-party is installed, caff itself runs once on the same party
(up to --caff-max keys: it is slow), driven through a pseudo-terminal that
answers yes to every question. Results are written as JSON to bench-results/ so
commits can be compared.

    make bench                 # N = 10 50 100 200 500
    bench/bench.py --sizes 10 50
    bench/compare.py bench-results/OLD.json bench-results/NEW.json
"""

import argparse
import json
import os
import platform
import pty
import re
import select
import shutil
import signal
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
# A sendmail that records: message on stdin, recipient is the last argument (caff
# gives only -t and the recipients in the headers, so the process ID tells the
# files apart; one used again, after a wrap of the IDs, gets a longer name).
for last; do :; done
name="%s/$$.$last"
while [ -e "$name.eml" ]; do name="$name.again"; done
cat > "$name.eml"
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


CAFFRC = """# caff's configuration (Perl) for a bench run: the party's signer, both keys.
$CONFIG{'owner'} = 'Demo Signer';
$CONFIG{'email'} = 'signer@example.org';
$CONFIG{'keyid'} = [ qw{%s} ];
$CONFIG{'caffhome'} = '%s';
$CONFIG{'gpg'} = '%s';
$CONFIG{'gpg-sign-args'} = 'save';
$CONFIG{'also-lsign-in-gnupghome'} = 'no';
"""
# caff's gpg: counts the processes (a line each), then becomes the real gpg.
GPG_COUNTER = """#!/bin/sh
echo >> "%s"
exec %s "$@"
"""
# Questions on caff's terminal, from caff ([Y/n], [y/N]) and from gpg --edit-key
# ((y/N), and its command prompt should the "save" given to it not end the session).
PROMPT = re.compile(rb"(\(y/N\)|\[y/N\]|\[Y/n\]|gpg>) ?$")


def drive(cmd, env, timeout):
    """(exit status, wall s, rusage, output) of cmd run on a pseudo-terminal as its
    controlling terminal (gpg --edit-key asks on /dev/tty), answering yes to every
    question and save to a gpg> prompt; killed, with its children, after timeout s."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(cmd[0], cmd, env)
        finally:
            os._exit(127)
    output, pending = bytearray(), b""
    while True:
        ready, _, _ = select.select([fd], [], [], max(0, start + timeout - time.perf_counter()))
        if not ready:
            print("%s: no end after %d s, killed" % (cmd[0], timeout), file=sys.stderr)
            os.killpg(pid, signal.SIGKILL)
            break
        try:
            data = os.read(fd, 65536)
        except OSError:     # EIO: the program and its children are gone
            data = b""
        if not data:
            break
        output += data
        pending = (pending + data)[-200:]
        prompt = PROMPT.search(pending)
        if prompt:
            os.write(fd, b"save\n" if prompt.group(1) == b"gpg>" else b"y\n")
            pending = b""
    os.close(fd)
    _, status, usage = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage, bytes(output)


def run_caff(party, base, sendmail):
    """caff 2.11 end to end, as a user would run it on this party: options as for
    caffpy, a fresh HOME and caffhome, the user's running gpg-agent.

    Its mails are the same as caffpy's: the expired key is ignored, the revoked
    user ID is not signed, and the user ID without address and the photo ID ride
    along in the mails of the key's addresses. caff exits 0 even when gpg fails
    (it stops before mailing then), so the mails count tells a complete run."""
    # caff's own HOME and caffhome, apart from caffpy's (base/c): no agent of its
    # own starts there, its socket is a link to the user's agent.
    work = os.path.join(base, "caff")
    home = os.path.join(work, "home")
    os.makedirs(home)
    calls = os.path.join(work, "gpg.calls")
    open(calls, "w").close()
    gpg = os.path.join(work, "gpg")
    with open(gpg, "w") as handle:
        handle.write(GPG_COUNTER % (calls, shutil.which("gpg")))
    os.chmod(gpg, 0o755)
    with open(os.path.join(home, ".caffrc"), "w") as handle:
        handle.write(CAFFRC % (" ".join(party.signers), os.path.join(work, "caffhome"), gpg))
    env = dict(os.environ, HOME=home, GNUPGHOME=party.user_home, TERM="dumb",
               PERL_MAILERS="sendmail:" + sendmail, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    cmd = [shutil.which("caff"), "-R", "-m", "yes", "--key-file", party.key_file] \
        + party.fingerprints
    rc, wall, usage, output = drive(cmd, env, 120 + 5 * len(party.fingerprints))
    if rc != 0 or b"[ERROR]" in output:
        print(output[-2000:].decode("utf-8", "replace"), file=sys.stderr)
    with open(calls) as handle:
        processes = len(handle.readlines())
    return {"exit": rc, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "peak_mib": usage.ru_maxrss / 1024, "gpg_processes": processes}


RUNNERS = {"caffpy": run_caffpy, "baseline": run_baseline, "caff": run_caff}


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
    """One timed run of caffpy, the baseline or caff, from a fresh caffhome / home."""
    for leftover in ("c", "b", "caff", "sent"):
        shutil.rmtree(os.path.join(base, leftover), ignore_errors=True)
    sendmail, sent = recorder(base)
    result = RUNNERS[side](party, base, sendmail)
    result["mails"] = len(os.listdir(sent))
    return result


def bench_size(n, repeat, with_caff):
    """Both sides `repeat` times, alternating, so that a slow spell of the machine
    hits both; each side's median run (by wall time) is reported. Then caff once,
    if asked: at about 0.3 s a key, repeating it would cost more than the rest."""
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
        row = {"n": n, "generate_s": generated, "runs": runs}
        if with_caff:
            row["caff"] = _one("caff", party, base)
        demo.stop_agents(party)
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


def cell(r, n):
    """One side's figures, as the table shows them."""
    return "%7.2f %7.2f %7.1f %6.2f %6.0f  (%d mails, exit %d)" % (
        r["wall"], r["cpu"], n / r["wall"], (r["gpg_processes"] or 0) / n,
        r["peak_mib"], r["mails"], r["exit"])


BUSY = "n = 0\nfor i in range(3000000): n += i\n"


def parallel_speedup(rounds=5):
    """How much faster two CPU-bound processes finish side by side than one after the
    other (2.0 on two free cores): what caffpy's parallel parts can gain here."""
    one, two = [], []       # the fastest of a few rounds: the machine at its best
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([PYTHON, "-c", BUSY], check=True)
        one.append(time.perf_counter() - start)
        start = time.perf_counter()
        procs = [subprocess.Popen([PYTHON, "-c", BUSY]) for _ in range(2)]
        for proc in procs:
            proc.wait()
        two.append(time.perf_counter() - start)
    return 2 * min(one) / min(two)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100, 200, 500])
    parser.add_argument("--flood", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each side per size; the median is reported")
    parser.add_argument("--caff-max", type=int, default=100,
                        help="largest party caff itself is run on, once (about 0.3 s a key)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench-results"))
    args = parser.parse_args()
    caff = shutil.which("caff")
    # Bytecode as an installed package has it (dh_python3 compiles at install): without
    # it, and with PYTHONDONTWRITEBYTECODE set, every run would compile caffpy anew.
    subprocess.run([PYTHON, "-m", "compileall", "-q", os.path.join(ROOT, "caffpy")], check=True)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    results = {"commit": commit, "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "machine": "%s, %d cores" % (platform.machine(), os.cpu_count()),
               "parallel_speedup": parallel_speedup(), "sizes": []}
    print("%s; two busy processes side by side: %.2fx as fast as one after the other"
          % (results["machine"], results["parallel_speedup"]))
    print("%5s | %-44s | %-44s | %s" % ("N", "caffpy: wall s / cpu s / keys/s / gpg per key / MiB",
                                       "baseline: wall s / cpu s / keys/s / gpg per key / MiB",
                                       "ratio"))
    for n in args.sizes:
        row = bench_size(n, args.repeat, caff is not None and n <= args.caff_max)
        results["sizes"].append(row)
        row["ratio"] = row["caffpy"]["wall"] / row["baseline"]["wall"]
        print("%5d | %s | %s | %.2f" % (n, cell(row["caffpy"], n), cell(row["baseline"], n),
                                        row["ratio"]), flush=True)
        if "caff" in row:
            row["caff_ratio"] = row["caff"]["wall"] / row["caffpy"]["wall"]
            print("%5s | %s | %.2f s per key, %.1f times caffpy's wall time" % (
                "caff", cell(row["caff"], n), row["caff"]["wall"] / n, row["caff_ratio"]),
                flush=True)
    if args.flood:
        flood = bench_flood(args.flood)
        results["flood"] = flood
        print("flooded key (%d third-party certifications): %.2f s vs %.2f s plain, adds %.2f s;"
              " %d mail(s)" % (args.flood, flood["flooded"]["wall"], flood["plain"]["wall"],
                               flood["added_s"], flood["flooded"]["mails"]))
    if caff:
        version = subprocess.run([caff, "--version"], capture_output=True, text=True).stdout
        fields = version.split()        # "/usr/bin/caff 2.11 - (c) ..."
        results["caff"] = "caff %s at %s, run once on each party of at most %d keys " \
            "(--caff-max)" % (fields[1] if len(fields) > 1 else "?", caff, args.caff_max)
        print(results["caff"])
    else:
        results["caff"] = "signing-party not installed (measured elsewhere: about 0.35 s per key)"
        print("caff 2.11:", results["caff"])
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "%s-%s.json" % (results["date"].replace(":", ""), commit))
    with open(path, "w") as handle:
        json.dump(results, handle, indent=1)
    print("results written to", path)


if __name__ == "__main__":
    main()
