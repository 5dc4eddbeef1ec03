#!/bin/bash
# Score the AN4 run's averaged checkpoint on dev with several CTC weights in beam search, then test.
set -u
cd /work/wt
export PYTHONPATH=/work/wt/src
export ATTNLAB_DATA_DIR=/work/shared/data
RUN=/work/runs/an4_tf_ctc05
CKPT=$RUN/checkpoints/averaged.ckpt
for w in ${WEIGHTS:-0.0 0.3 0.5 0.7}; do
  python -m attnlab.evaluate ckpt_path=$CKPT data.split=dev +decode.ctc_weight=$w paths.output_dir=$RUN/eval_dev_ctc$w run_name=x > $RUN/eval_dev_ctc$w.log 2>&1
  python -c "import json,sys; m=json.load(open('$RUN/eval_dev_ctc$w/metrics.json')); print('dev ctc_weight $w', m['test']['dev'])"
done
