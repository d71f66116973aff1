"""Training: the loop shared by the two training steps (pretrain, finetune), its optimisers,
checkpoints and runtime (device, threads, autocast)."""
