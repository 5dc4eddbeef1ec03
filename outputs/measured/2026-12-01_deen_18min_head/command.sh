cd /work/main; ATTNLAB_DATA_DIR=/work/shared/data WANDB_MODE=offline /usr/bin/time -v attnlab-train run_name=deen_18min trainer.max_time=00:00:18:00 test=false paths.output_dir=/work/runs/deen_18min
