#!/bin/bash
# The Slurm tier: `steinlab sweep --slurm` against a real single-node Slurm on this host.
# Installs Debian's slurm-wlm and munge when missing (apt-get, as scripts/bootstrap.sh does),
# writes a minimal slurm.conf in a temporary directory (slurmctld and slurmd on this host,
# 2 CPUs, no accounting, its own ports, so a real Slurm on a developer machine is left
# alone), starts munged (unless one answers already), slurmctld and slurmd, submits a
# 3-cell sweep of experiments/quickstart-2d.yaml as a job array, waits for it by polling the
# cells' exit-status files and the job state through scontrol, checks every cell's log with
# h5py, checks that a second submission finds nothing to do, and stops what it started.
# Where the daemons cannot start (no root, a sandbox), it skips with the reason, except
# with CI=true, where that is a failure. Prints "N passed, N failed" last.
# Usage: scripts/slurm-test.sh   (STEINLAB_EXE overrides build/steinlab)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EXE=${STEINLAB_EXE:-$ROOT/build/steinlab}
passed=0
failed=0

say() { echo "slurm-test: $*"; }
give_up() {   # the daemons cannot run here: skip on a developer machine, fail in CI
    if [ "${CI:-}" = true ]; then
        say "FAIL: $*"
        echo "$passed passed, $((failed + 1)) failed"
        exit 1
    fi
    say "SKIP: $* (this tier needs root and a host where slurmctld/slurmd can run)"
    echo "$passed passed, $failed failed"
    exit 0
}
check() {     # check NAME COMMAND...
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        say "ok: $name"
    else
        failed=$((failed + 1))
        say "FAIL: $name"
    fi
}

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null || give_up "not root and no password-less sudo"
    sudo_cmd=(sudo -n)
fi

missing=()
for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    { "${sudo_cmd[@]}" apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
          --no-install-recommends "${missing[@]}" >/dev/null; } || give_up "cannot install ${missing[*]}"
fi
[ -x "$EXE" ] || ninja -C build >/dev/null || give_up "cannot build $EXE"

WORK=$(mktemp -d /tmp/steinlab-slurm.XXXXXX)
chmod 755 "$WORK"
started_pids=()
cleanup() {
    if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ]; then
        timeout 20 scontrol shutdown >/dev/null 2>&1
    fi
    sleep 1
    for pid in "${started_pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${started_pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    if [ "${KEEP:-}" != 1 ]; then rm -rf "$WORK"; else say "kept $WORK"; fi
}
trap cleanup EXIT

# munge: reuse a running munged, else start one with its own socket and key.
MUNGE_SOCKET=/run/munge/munge.socket.2
if ! (munge -n | unmunge) >/dev/null 2>&1; then
    mkdir -p "$WORK/munge"
    MUNGE_SOCKET=$WORK/munge/munge.socket
    dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
    chmod 700 "$WORK/munge"
    chmod 400 "$WORK/munge/munge.key"
    "${sudo_cmd[@]}" /usr/sbin/munged -F --force --key-file="$WORK/munge/munge.key" \
        --socket="$MUNGE_SOCKET" --pid-file="$WORK/munge/munged.pid" \
        --log-file="$WORK/munge/munged.log" --seed-file="$WORK/munge/seed" >/dev/null 2>&1 &
    started_pids+=($!)
    for _ in $(seq 50); do [ -S "$MUNGE_SOCKET" ] && break; sleep 0.1; done
    (munge -S "$MUNGE_SOCKET" -n | unmunge -S "$MUNGE_SOCKET") >/dev/null 2>&1 ||
        give_up "munged does not start: $(tail -3 "$WORK/munge/munged.log" 2>/dev/null)"
fi

host=$(hostname -s)
cpus=$(nproc)
((cpus > 2)) && cpus=2
mkdir -p "$WORK/state" "$WORK/spool" "$WORK/log"
export SLURM_CONF=$WORK/slurm.conf
cat >"$SLURM_CONF" <<EOF
# A throwaway single-node Slurm for scripts/slurm-test.sh.
ClusterName=steinlabtest
SlurmctldHost=$host
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
InactiveLimit=0
SlurmdTimeout=60
NodeName=$host CPUs=$cpus RealMemory=500 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

"${sudo_cmd[@]}" env SLURM_CONF="$SLURM_CONF" /usr/sbin/slurmctld -D -i -f "$SLURM_CONF" \
    >"$WORK/log/slurmctld.out" 2>&1 &
started_pids+=($!)
"${sudo_cmd[@]}" env SLURM_CONF="$SLURM_CONF" /usr/sbin/slurmd -D -f "$SLURM_CONF" \
    >"$WORK/log/slurmd.out" 2>&1 &
started_pids+=($!)
state=""
for _ in $(seq 60); do
    state=$(scontrol show node "$host" 2>/dev/null | sed -n 's/.*State=\([A-Z+_]*\).*/\1/p' | head -1)
    [ "$state" = IDLE ] && break
    sleep 0.5
done
if [ "$state" != IDLE ]; then
    tail -5 "$WORK/log/slurmctld.log" "$WORK/log/slurmd.log" "$WORK/log/"*.out 2>/dev/null
    give_up "the node did not become IDLE (state '${state:-none}')"
fi
say "single-node Slurm up ($host, $cpus CPUs)"

OUT=$WORK/sweep
submit=$("$EXE" sweep experiments/quickstart-2d.yaml steps=40 log.render_every=20 \
    log.eval_every=20 'sweep={seed: [0, 1, 2]}' --slurm --out "$OUT" --cpus-per-task 1 \
    --time 00:05:00 2>&1)
echo "$submit"
job=$(echo "$submit" | sed -n 's/^submitted: Slurm job \([0-9]*\).*/\1/p')
check "sweep --slurm submits a job array" test -n "$job"
check "the last line names the index" test "$(echo "$submit" | tail -1)" = "index: $OUT/index.h5"
check "the script is beside the cells" grep -q '^#SBATCH --array=0-2$' "$OUT/sweep.sbatch"

# Wait for every cell's exit status; scontrol says when the array has failed outright.
deadline=$((SECONDS + 240))
while ((SECONDS < deadline)); do
    n=$(ls "$OUT"/cell-*/exit_status 2>/dev/null | wc -l)
    ((n == 3)) && break
    states=$(scontrol show job "$job" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort -u | tr '\n' ' ')
    case "$states" in *FAILED* | *CANCELLED* | *NODE_FAIL* | *TIMEOUT*) break ;; esac
    sleep 1
done
states=$(scontrol show job "$job" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort -u | tr '\n' ' ')
say "array job $job: states ${states:-gone}"
check "every array task recorded its exit status" \
    test "$(ls "$OUT"/cell-*/exit_status 2>/dev/null | wc -l)" = 3
check "every task completed" test "$states" = "COMPLETED "
check "Slurm's own output files are in the sweep directory" \
    test "$(ls "$OUT"/slurm-"$job"_*.out 2>/dev/null | wc -l)" = 3
check "every cell's log is complete and linked from the index" /usr/bin/python3 - "$OUT" <<'EOF'
import os, sys
import h5py
out = sys.argv[1]
ok = True
with h5py.File(os.path.join(out, "index.h5"), "r") as f:
    for i in range(3):
        cell = f"cell-{i:04d}"
        with open(os.path.join(out, cell, "exit_status")) as s:
            code = s.read().strip()
        g = f["cells"][cell]
        rows, steps = g["steps/step"].shape[0], int(g.attrs["steps"])
        seed = int(g.attrs["seed"])
        psnr = g["eval/psnr"][-1]
        del g
        print(f"  {cell}: exit {code}, {rows}/{steps} steps, seed {seed}, final PSNR {psnr:.2f} dB")
        ok &= code == "0" and rows == steps == 40 and seed == i and psnr > 10
sys.exit(0 if ok else 1)
EOF
again=$("$EXE" sweep experiments/quickstart-2d.yaml steps=40 log.render_every=20 \
    log.eval_every=20 'sweep={seed: [0, 1, 2]}' --slurm --out "$OUT" 2>&1)
check "a second submission finds every cell finished" grep -q "all 3 cells finished" <<<"$again"
if ((failed)); then
    for f in "$OUT"/slurm-*.out "$OUT"/cell-*/stderr.txt "$WORK/log/slurmd.log"; do
        [ -f "$f" ] && { echo "--- $f"; tail -5 "$f"; }
    done
fi
echo "$passed passed, $failed failed"
((failed == 0))
