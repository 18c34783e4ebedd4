#!/bin/bash
# launch.sh: the body of the Slurm batch scripts msm-1node.sbatch and msm-multinode.sbatch, which hold only the
# resource requests. It runs in the job's batch shell, in the directory sbatch was called from (the repository
# root: it holds ./msmtrain, or set MSMTRAIN to the binary).
#
#   launch.sh CONFIG [--set key=value ...]
#
# Tasks: one msmtrain process per GPU that Slurm allocated on each node (SLURM_GPUS_ON_NODE, else the count in
# SLURM_GPUS_PER_NODE, else the devices in CUDA_VISIBLE_DEVICES), with the node's CPUs split evenly between them;
# msmtrain reads SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID and uses cuda:SLURM_LOCALID.
#
# Stops: Slurm's --signal=USR1@300 sends SIGUSR1 to every msmtrain process 5 minutes before the time limit (and a
# preemption or the time limit sends SIGTERM). msmtrain stops at the next point where the run's files are
# complete (a checkpoint after the current step, or before training if it has not started: prep, model loading)
# and exits with status 3, every process after rank 0's save is durable. Status 3 requeues the job, which
# resumes from the checkpoint (same command, same run directory). This shell survives the signals it gets itself
# (it waits for msmtrain to finish saving), and a signal that comes before msmtrain starts requeues directly.
#
# srun runs with --kill-on-bad-exit=0 and --wait: the processes of a stop all exit with status 3, but not in the
# same millisecond, and with --kill-on-bad-exit the first exit (3 is a "bad" exit) makes Slurm kill the others,
# whose 137 then hides the 3 (srun returns the highest status). --wait=MSMTRAIN_EXIT_WAIT seconds (default 120)
# still ends the step when one process fails and the others would wait for it in a collective.
set -uo pipefail

die() {
  echo "msmtrain launch: $*" >&2
  exit 1
}

# gpus_on_node prints the number of GPUs allocated to the job on this node (all nodes get the same with
# --gpus-per-node).
gpus_on_node() {
  local n=${SLURM_GPUS_ON_NODE:-}
  if [ -z "$n" ] && [ -n "${SLURM_GPUS_PER_NODE:-}" ]; then
    n=${SLURM_GPUS_PER_NODE##*:} # "4" or "h100:4"
  fi
  if [ -z "$n" ] && [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    n=$(tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | grep -c .)
  fi
  case $n in
  '' | *[!0-9]* | 0) return 1 ;;
  esac
  echo "$n"
}

stop=
trap 'stop=TERM' TERM
trap 'stop=USR1' USR1
trap 'stop=INT' INT

[ $# -ge 1 ] || die "usage: sbatch scripts/slurm/msm-1node.sbatch CONFIG [--set key=value ...]"
config=$1
shift
msmtrain=${MSMTRAIN:-./msmtrain}
command -v "$msmtrain" >/dev/null || die "$msmtrain not found: submit from the repository root (after make), or set MSMTRAIN"
[ -r "$config" ] || die "config $config not found (paths are relative to the directory sbatch was called from)"
gpus=$(gpus_on_node) || die "cannot tell how many GPUs the job has on this node (SLURM_GPUS_ON_NODE, SLURM_GPUS_PER_NODE and CUDA_VISIBLE_DEVICES are unset): submit with --gpus-per-node=N"
nodes=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
cpus=$((${SLURM_CPUS_ON_NODE:-$gpus} / gpus))
[ "$cpus" -ge 1 ] || cpus=1
export OMP_NUM_THREADS=$cpus
wait_s=${MSMTRAIN_EXIT_WAIT:-120}

requeue() {
  echo "msmtrain launch: $1: requeueing job ${SLURM_JOB_ID:-?}"
  scontrol requeue "${SLURM_JOB_ID:?}" || echo "msmtrain launch: requeue refused: submit the same command again to resume" >&2
}

if [ -n "$stop" ]; then # before anything started: nothing to save
  requeue "SIG$stop before msmtrain started"
  exit 3
fi
echo "msmtrain launch: $nodes node(s) x $gpus GPU(s): $((nodes * gpus)) processes of $cpus CPUs each"
# The batch allocation's CPUs are requested per GPU (--cpus-per-gpu); the tasks ask for theirs with --cpus-per-task,
# which srun refuses together with an inherited --cpus-per-gpu, hence env -u.
env -u SLURM_CPUS_PER_GPU srun --nodes="$nodes" --ntasks=$((nodes * gpus)) --ntasks-per-node="$gpus" \
  --cpus-per-task="$cpus" --kill-on-bad-exit=0 --wait="$wait_s" \
  "$msmtrain" --config "$config" "$@" &
pid=$!
status=0
wait "$pid" || status=$?
# a trapped signal interrupts wait (status > 128) while srun still runs: wait for msmtrain to finish saving
while kill -0 "$pid" 2>/dev/null; do
  status=0
  wait "$pid" || status=$?
done
if [ "$status" = 3 ]; then
  requeue "msmtrain stopped on a signal with its state saved"
elif [ -n "$stop" ]; then
  echo "msmtrain launch: got SIG$stop; msmtrain exited with status $status (not 3): not requeueing" >&2
fi
exit "$status"
