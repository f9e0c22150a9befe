#!/bin/bash
# One tunelab study over a Slurm job array: task 0 creates the study, every task runs its trials.
# Start the storage first (once):  tunelab storage-server --storage "$DB" --host 0.0.0.0 --port 13000
# Then:  DB=postgresql://user:pw@db-host/optuna STORAGE=grpc://proxy-host:13000 sbatch examples/cluster/slurm.sh
# Trial checkpoints and run files go to ARTIFACTS (a directory every node mounts, or s3://BUCKET);
# afterwards, on any machine:  tunelab pull --storage "$STORAGE" --study-name "$STUDY" --save-dir runs
#SBATCH --job-name=tunelab
#SBATCH --array=0-7
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
set -euo pipefail
STORAGE=${STORAGE:?set STORAGE=grpc://HOST:PORT or postgresql://...}
STUDY=${STUDY:-cluster-study}
ARTIFACTS=${ARTIFACTS:-$HOME/tunelab-artifacts}  # shared by every node (NFS home, Lustre, ...)
mkdir -p "$ARTIFACTS"
if [ "${SLURM_ARRAY_TASK_ID:-0}" = 0 ]; then
  # creates the study (study file + space stored with it) and works on it with every GPU of this node
  tunelab tune -c "${STUDY_FILE:-examples/quickstart.yaml}" --storage "$STORAGE" --study-name "$STUDY" \
    --artifacts "$ARTIFACTS" --save-dir "runs/$SLURM_JOB_ID-0"
else
  sleep 60  # let task 0 create the study
  # the study names its artifact store; --artifacts here only where a node mounts it elsewhere
  tunelab worker --storage "$STORAGE" --study-name "$STUDY" --devices all --save-dir "runs/$SLURM_JOB_ID-$SLURM_ARRAY_TASK_ID"
fi
