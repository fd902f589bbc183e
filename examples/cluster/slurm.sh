#!/bin/bash
# kiln train on Slurm: one torchrun per node (srun), 4 processes each; the first node hosts the rendezvous.
#SBATCH --job-name=kiln-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
set -euo pipefail
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes "$SLURM_NNODES" --nproc-per-node 4 \
    --rdzv-backend c10d --rdzv-endpoint "$head:29500" --rdzv-id "$SLURM_JOB_ID" \
    -m kiln train --config big.yaml --runs-dir /shared/runs --name "big-$SLURM_JOB_ID"
