#!/usr/bin/env bash
# Usage: eval_run.sh RUN_DIR SPLIT  -- beam/greedy on best, 30-minute and averaged checkpoints
set -u
RUN=$1; SPLIT=${2:-test_2016_flickr}
export ATTNLAB_DATA_DIR=/work/shared/data WANDB_MODE=offline
cd /work/main
C=$RUN/checkpoints
START=$(python -c "import json;print(json.load(open('$RUN/metrics.json'))['started_at'])")
BEST=$(python -c "import json;print(json.load(open('$RUN/metrics.json'))['best_checkpoint'])")
# newest step checkpoint written within 30 minutes of the start
AT30=$(python - <<PY
import os,glob
s=$START
c=[p for p in sorted(glob.glob('$C/step*.ckpt')) if os.path.getmtime(p)-s<=1800]
print(c[-1]); print(round(os.path.getmtime(c[-1])-s), file=open('$RUN/at30.txt','w'))
PY
)
echo "30-min checkpoint: $AT30 at $(cat $RUN/at30.txt) s"
attnlab-average $RUN --last 5 -o $RUN/avg5.ckpt
attnlab-average $RUN --last 10 -o $RUN/avg10.ckpt
ev() { name=$1; ck=$2; shift 2
  attnlab-eval ckpt_path=$ck data.split=$SPLIT "$@" hydra.run.dir=$RUN/eval/$name > $RUN/eval_$name.log 2>&1
  python -c "import json;m=json.load(open('$RUN/eval/$name/metrics.json'));t=m['test']['$SPLIT'];print('$name', round(t['bleu'],2), t.get('bleu_signature'))"
}
ev best_beam $BEST decode=beam
ev at30_greedy $AT30
ev at30_beam $AT30 decode=beam
ev avg5_greedy $RUN/avg5.ckpt
ev avg5_beam $RUN/avg5.ckpt decode=beam
ev avg10_greedy $RUN/avg10.ckpt
ev avg10_beam $RUN/avg10.ckpt decode=beam
