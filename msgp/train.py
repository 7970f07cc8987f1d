"""``python -m msgp.train ...`` runs ``msgp train``; under ``torchrun --nproc-per-node N -m msgp.train
...`` every process runs it and they train together with DistributedDataParallel."""
from cli import train

if __name__ == "__main__":
    train(prog_name="msgp train")
