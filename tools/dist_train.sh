#!/usr/bin/env bash
# Distributed training with torchrun: bash tools/dist_train.sh CONFIG NUM_PROCESSES [train.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT as for torchrun. Without GPUs the processes
# use the gloo backend (tools/train.py switches to it), so DDP also runs on a CPU-only machine.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG NUM_PROCESSES [tools/train.py options...]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON=${PYTHON:-python}

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
    --nproc_per_node="$NPROC" \
    "$DIR/train.py" "$CONFIG" --launcher pytorch "$@"
