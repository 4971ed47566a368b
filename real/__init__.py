"""real: a torch executor that runs costmodel schedules on GPUs (NCCL) or CPUs (gloo)."""
