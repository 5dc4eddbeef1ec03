#!/usr/bin/env bash
# The default command (fp32 on this CPU), two epochs, with the native kernels (the loss in C)
# and without (PyTorch's log_softmax), one after the other on an otherwise idle CPU, at bd20fb4.
set -x
for native in true false; do
  attnlab-train trainer.max_epochs=2 trainer.max_time=null test=false \
    native_kernels=$native run_name=s20_native_loss_$native logger=csv
done
