cd /work/main; ATTNLAB_DATA_DIR=/work/shared/data WANDB_MODE=offline /usr/bin/time -v attnlab-train run_name=deen_s8 callbacks.step_checkpoint.save_top_k=-1 paths.output_dir=/work/runs/deen_s8
