#!/usr/bin/env bash
# Usage: eval_run2.sh RUN_DIR SPLIT  -- beam on the run's scored checkpoint, best, and the 30-minute one
set -u
RUN=$1; SPLIT=${2:-test_2016_flickr}
export ATTNLAB_DATA_DIR=/work/shared/data WANDB_MODE=offline
cd /work/main
START=$(python -c "import json;print(json.load(open('$RUN/metrics.json'))['started_at'])")
BEST=$(python -c "import json;print(json.load(open('$RUN/metrics.json'))['best_checkpoint'])")
TESTED=$(python -c "import json;print(json.load(open('$RUN/metrics.json'))['tested_checkpoint'])")
AT30=$(python - <<PY
import os
from pathlib import Path
from attnlab.average import step_checkpoints
s=$START
c=[p for p in step_checkpoints(Path('$RUN')) if os.path.getmtime(p)-s<=1800]
print(c[-1]); print(round(os.path.getmtime(c[-1])-s), file=open('$RUN/at30.txt','w'))
PY
)
echo "30-min checkpoint: $AT30 at $(cat $RUN/at30.txt) s"
ev() { name=$1; ck=$2; shift 2
  attnlab-eval "ckpt_path='$ck'" data.split=$SPLIT "$@" hydra.run.dir=$RUN/eval/$name > $RUN/eval_$name.log 2>&1
  python -c "import json;m=json.load(open('$RUN/eval/$name/metrics.json'));t=m['test']['$SPLIT'];print('$name', round(t['bleu'],2), t.get('bleu_signature'))"
}
ev tested_greedy $TESTED
ev tested_beam $TESTED decode=beam
ev best_greedy $BEST
ev best_beam $BEST decode=beam
ev at30_greedy $AT30
ev at30_beam $AT30 decode=beam
