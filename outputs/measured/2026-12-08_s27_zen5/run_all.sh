#!/usr/bin/env bash
# Session 27 (2026-12-08), every command in the order run, from the repository root, with
# ATTNLAB_DATA_DIR=/work/shared/data WANDB_MODE=offline. The machine: AMD EPYC, cpu family 26
# model 2 (Zen 5), 2 cores, AVX-512 incl. AVX512_BF16, 23 GiB. (The folder was first named
# *_zen3, as the summary of session 26 expected; lscpu says only "AMD EPYC", and the first
# bench's oneDNN peak of 432 GFLOP/s showed it was not. The path in bench_341ce79.log was
# updated to the folder's new name.)
set -euo pipefail
D=outputs/measured/2026-12-08_s27_zen5

# 1. The bench at session 26's HEAD (341ce79), before any change.
/usr/bin/time -v attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_341ce79.json > $D/bench_341ce79.log 2>&1

# 2. Where the fp32 training step's time goes (torch profiler; WARM = passes over the 4 batches first).
python $D/profile_transformer.py > $D/profile_transformer_head.log 2>&1
WARM=4 python $D/profile_transformer.py > $D/profile_transformer_warm4.log 2>&1
python $D/faults_per_step.py > $D/faults_per_step_head.log 2>&1

# 3. Weight-gradient matmuls, MKL against oneDNN, per shape (7,552 rows).
python $D/weight_grad_matmuls.py > $D/weight_grad_matmuls.log 2>&1

# 4. After routing weight gradients through oneDNN (17563eb, in the working tree then): A/B in the step.
python $D/ab_weight_grads.py > $D/ab_weight_grads_small.log 2>&1
WARM=3 python $D/profile_transformer.py > $D/profile_transformer_onednn_dW.log 2>&1
attnlab-bench '~model@extra_models.base' sections=[train,flops] steps=8 warmup=2 output=$D/bench_small_onednn_dW.json > $D/bench_small_onednn_dW.log 2>&1
WARM=8 python $D/profile_transformer.py > $D/profile_transformer_onednn_dW_warm8.log 2>&1
python $D/who_fills.py      # printed: the [rows, V] zero-fills are slice_backward's (Packing.real)
python $D/copies.py         # printed: the dW inputs' transposing copies, ~70 ms a step

# 5. Tried and not kept: fp32 training attention by matmuls over <= 64 keys.
python $D/attention_fp32_probe.py > $D/attention_fp32_probe.log 2>&1
ROUNDS=8 python $D/ab_matmul_attention.py > $D/ab_matmul_attention_small.log 2>&1

# 6. Stacked Q/K/V projections (c1441b0, in the working tree then).
python $D/ab_stacked_projections.py > $D/ab_stacked_projections_small.log 2>&1
ROUNDS=10 python $D/ab_stacked_projections.py > $D/ab_stacked_projections_small_r10.log 2>&1

# 7. The paper base, weight gradients MKL against oneDNN (at c1441b0).
ROUNDS=3 python $D/ab_weight_grads.py model=transformer > $D/ab_weight_grads_base.log 2>&1

# 8. The bench at c1441b0.
/usr/bin/time -v attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_c1441b0.json > $D/bench_c1441b0.log 2>&1

# 9. Decoding with stacked projections against one matmul each (c1441b0).
python $D/ab_stacked_decoding.py > $D/ab_stacked_decoding.log 2>&1

# 10. Response times, three times each.
for i in 1 2 3; do /usr/bin/time -a -o $D/response_times.log -f "attnlab-train --help: %e s" attnlab-train --help > /dev/null 2>&1; /usr/bin/time -a -o $D/response_times.log -f "attnlab-train model.d_model=-3 (config error): %e s" attnlab-train model.d_model=-3 > /dev/null 2>&1; done

# 11. The profiles of step 4 again, saved this time (at 1f5cd98's code).
python $D/who_fills.py > $D/who_fills.log 2>&1
python $D/copies.py > $D/copies.log 2>&1

# 12. Weight gradients MKL against oneDNN on real Multi30k batches at attnlab-train's 2,560 tokens (fp32).
python $D/ab_weight_grads_real.py > $D/ab_weight_grads_real.log 2>&1

# 13. Clean-clone CI at 179b0ed.
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_179b0ed.log 2>&1

# 14. fp32 against bf16 autocast on real batches (what ${cpu_precision:} picks here).
python $D/ab_precision_real.py > $D/ab_precision_real.log 2>&1

# 15. RNN output layer's rows rounded (in the working tree, committed as the next commit):
#     memory over 400 and 1,000 updates, one process per variant, and the step A/B.
ROUND=0 python $D/rnn_memory_probe.py 400 > $D/rnn_memory_round0.log 2>&1
ROUND=1 python $D/rnn_memory_probe.py 400 > $D/rnn_memory_round1.log 2>&1
python $D/ab_rnn_rounding.py 120 20 > $D/ab_rnn_rounding.log 2>&1
python $D/ab_rnn_rounding.py 220 20 > $D/ab_rnn_rounding_220.log 2>&1
ROUND=1 python $D/rnn_memory_probe.py 1000 > $D/rnn_memory_round1_1000.log 2>&1
ROUND=0 python $D/rnn_memory_probe.py 1000 > $D/rnn_memory_round0_1000.log 2>&1
# Packing.real's backward by _FirstRows (empty + copy, not zeros + copy), then the A/B again:
python $D/ab_rnn_rounding.py 220 20 > $D/ab_rnn_rounding_first_rows.log 2>&1
python $D/first_rows_backward.py > $D/first_rows_backward.log 2>&1

# 16. The bench at a401535 (this session's last code), and the RNN rounding at the bench's batches.
/usr/bin/time -v attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_a401535.json > $D/bench_a401535.log 2>&1
python $D/ab_rnn_rounding_bench.py > $D/ab_rnn_rounding_bench.log 2>&1

# 17. Clean-clone CI at a5ae699.
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_a5ae699.log 2>&1

# 18. The last clean-clone CI (the commit adding this closing note).
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_final.log 2>&1

# 19. The probe between rounds times oneDNN too (b528315); the bench again.
/usr/bin/time -v attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_b528315.json > $D/bench_b528315.log 2>&1

# 20. Clean-clone CI at 6b8045a.
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_6b8045a.log 2>&1
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_142efdf.log 2>&1  # 21. after the review commit
