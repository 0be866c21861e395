"""scripts/bench-allreduce: allreduce bandwidth of c10d (gloo on CPU, NCCL on GPU) for gradient-sized
tensors, as DDP sees it. Run under torchrun; rank 0 prints one line per size."""
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist


def main():
    backend = sys.argv[1] if len(sys.argv) > 1 else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    for mb in (4, 25, 100, 400):
        x = torch.ones(mb * 2**20 // 4, device=device)
        times = []
        for i in range(6):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            dist.all_reduce(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i > 0:
                times.append(time.perf_counter() - t)
        s = statistics.median(times)
        # Bus bandwidth as NCCL's tests define it: what each rank sends and receives in a ring.
        bus = 2 * (world - 1) / world * x.numel() * 4 / s / 1e9
        if rank == 0:
            print(f"bench-allreduce: {backend}, {world} ranks, {mb} MB: {s * 1e3:.1f} ms, bus bandwidth {bus:.2f} GB/s",
                  flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
