"""The plain PyTorch DDP script a Python user would write for trainer's model: scripts/bench-ddp
runs it under torchrun against `trainer` at equal settings and compares throughput.

Same architecture as src/model/model.cpp (pre-norm Transformer encoder-decoder, q and kv
projections, scaled-dot-product attention, GELU feed-forward, scaled embeddings plus sinusoidal
positions, output tied to the target embedding, the same initialization), the same loss (token
cross-entropy with label smoothing, normalized by the global token count), AdamW with the same
hyper-parameters, gradient clipping, DDP over gloo (NCCL on GPUs) with the same bucket size, the same threads,
one small allreduce per step for the logged loss (as trainer does), and the very same batches:
each rank replays what `trainer` fed it (RESUMABLE_BENCH_DUMP_BATCHES).

    torchrun --nproc-per-node 2 scripts/bench_ddp_twin.py --batches PREFIX --config FILE --steps N --warmup W
prints one line on rank 0: "twin: S samples/s over steps W+1..N (T s)".
"""
import argparse
import json
import math
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

PAD, BOS, EOS = 0, 1, 2


class MultiHeadAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q, self.kv, self.out = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)

    def forward(self, query, memory, key_mask, causal):
        b, tq, d = query.shape
        tk, hd = memory.size(1), d // self.heads
        q = self.q(query).view(b, tq, self.heads, hd).transpose(1, 2)
        kv = self.kv(memory).view(b, tk, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=key_mask, is_causal=causal)
        return self.out(y.transpose(1, 2).reshape(b, tq, d))


class FeedForward(nn.Module):
    def __init__(self, d, ff):
        super().__init__()
        setattr(self, "in", nn.Linear(d, ff))
        self.out = nn.Linear(ff, d)

    def forward(self, x):
        return self.out(F.gelu(getattr(self, "in")(x)))


class EncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["d_model"]
        self.norm1, self.attention = nn.LayerNorm(d), MultiHeadAttention(d, c["heads"])
        self.norm2, self.ff = nn.LayerNorm(d), FeedForward(d, c["ff_dim"])
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, x, key_mask):
        h = self.norm1(x)
        y = x + self.dropout(self.attention(h, h, key_mask, False))
        return y + self.dropout(self.ff(self.norm2(y)))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["d_model"]
        self.norm1, self.self_attention = nn.LayerNorm(d), MultiHeadAttention(d, c["heads"])
        self.norm2, self.cross_attention = nn.LayerNorm(d), MultiHeadAttention(d, c["heads"])
        self.norm3, self.ff = nn.LayerNorm(d), FeedForward(d, c["ff_dim"])
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, x, memory, memory_mask):
        h = self.norm1(x)
        y = x + self.dropout(self.self_attention(h, h, None, True))
        y = y + self.dropout(self.cross_attention(self.norm2(y), memory, memory_mask, False))
        return y + self.dropout(self.ff(self.norm3(y)))


class G2PTransformer(nn.Module):
    def __init__(self, c, source_vocab, target_vocab):
        super().__init__()
        d = self.d = c["d_model"]
        self.source_embedding, self.target_embedding = nn.Embedding(source_vocab, d), nn.Embedding(target_vocab, d)
        self.encoder = nn.ModuleList(EncoderLayer(c) for _ in range(c["encoder_layers"]))
        self.decoder = nn.ModuleList(DecoderLayer(c) for _ in range(c["decoder_layers"]))
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout = nn.Dropout(c["dropout"])
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "embedding" in name:
                    nn.init.normal_(p, 0.0, d ** -0.5)
                elif p.dim() == 2:
                    nn.init.xavier_uniform_(p)
                elif "bias" in name and "norm" not in name:
                    p.zero_()
        n = 256
        pos = torch.arange(n, dtype=torch.float64).unsqueeze(1)
        freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
        table = torch.zeros(n, d, dtype=torch.float64)
        table[:, 0::2] = torch.sin(pos * freq)
        table[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
        self.register_buffer("positions", table.float(), persistent=False)

    def embed(self, table, ids):
        return self.dropout(table(ids) * math.sqrt(self.d) + self.positions[: ids.size(1)])

    def forward(self, source, target_in):
        key_mask = source.ne(PAD).view(source.size(0), 1, 1, source.size(1))
        x = self.embed(self.source_embedding, source)
        for layer in self.encoder:
            x = layer(x, key_mask)
        memory = self.encoder_norm(x)
        y = self.embed(self.target_embedding, target_in)
        for layer in self.decoder:
            y = layer(y, memory, key_mask)
        return self.decoder_norm(y) @ self.target_embedding.weight.t()


def read_batches(path):
    batches = []
    with open(path) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            examples = []
            for ex in fields[1:]:
                src, tgt = ex.split(";")
                examples.append(([int(t) for t in src.split(",") if t], [int(t) for t in tgt.split(",") if t]))
            batches.append((float(fields[0]), examples))
    return batches


def collate(examples):
    s = max(1, max(len(e[0]) for e in examples))
    t = max(len(e[1]) + 1 for e in examples)
    src = torch.full((len(examples), s), PAD, dtype=torch.long)
    tin = torch.full((len(examples), t), PAD, dtype=torch.long)
    tout = torch.full((len(examples), t), PAD, dtype=torch.long)
    for i, (a, b) in enumerate(examples):
        src[i, : len(a)] = torch.tensor(a, dtype=torch.long)
        tin[i, 0] = BOS
        tin[i, 1: len(b) + 1] = torch.tensor(b, dtype=torch.long)
        tout[i, : len(b)] = torch.tensor(b, dtype=torch.long)
        tout[i, len(b)] = EOS
    return src, tin, tout


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batches", required=True, help="PREFIX of the per-rank dumps (PREFIX.rank<r>)")
    p.add_argument("--config", required=True, help="the resolved trainer config (trainer --print-config)")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--source-vocab", type=int, required=True)
    p.add_argument("--target-vocab", type=int, required=True)
    p.add_argument("--parameters", type=int, required=True, help="trainer's parameter count: the twin must match it")
    args = p.parse_args()
    c = json.load(open(args.config))
    # As trainer: a GPU per rank (its local rank) with NCCL when the config asks for CUDA, else gloo.
    cuda = c["device"] == "cuda" or (c["device"] == "auto" and torch.cuda.is_available())
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    threads = c["threads"] if c["threads"] > 0 else max(1, os.cpu_count() // int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    torch.set_num_threads(threads)
    torch.manual_seed(c["seed"])
    batches = read_batches(f"{args.batches}.rank{rank}")[: args.steps]
    assert len(batches) >= args.steps, f"only {len(batches)} dumped steps"
    model = G2PTransformer(c, args.source_vocab, args.target_vocab).to(device)
    mine = sum(p.numel() for p in model.parameters())
    assert mine == args.parameters, f"the twin has {mine} parameters, trainer {args.parameters}: not the same model"
    # As trainer: gradients are views into the buckets.
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=c["bucket_mib"], gradient_as_bucket_view=True)
    opt = torch.optim.AdamW(model.parameters(), lr=c["lr"], betas=(c["adam_beta1"], c["adam_beta2"]),
                            eps=c["adam_eps"], weight_decay=c["weight_decay"])
    autocast = c["amp"] in ("bf16", "fp16")
    dtype = torch.bfloat16 if c["amp"] == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=c["amp"] == "fp16")
    ddp.train()
    start = None
    for step, (global_tokens, examples) in enumerate(batches, 1):
        if step == args.warmup + 1:
            dist.barrier()
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
        src, tin, tout = (t.to(device, non_blocking=True) for t in collate(examples))
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            logits = ddp(src, tin).float()
        token_loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tout.reshape(-1), ignore_index=PAD,
                                     label_smoothing=c["label_smoothing"], reduction="none")
        loss_sum = token_loss.sum()
        scaler.scale(loss_sum * (world / global_tokens)).backward()
        scaler.unscale_(opt)
        if c["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"])
        scaler.step(opt)
        scaler.update()
        stats = torch.tensor([loss_sum.item(), float(sum(len(e[1]) + 1 for e in examples)), 0.0, 0.0],
                             dtype=torch.float64, device=device)
        dist.all_reduce(stats)
    dist.barrier()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    samples = (args.steps - args.warmup) * c["batch_size"]
    if rank == 0:
        print(f"twin: {samples / seconds:.1f} samples/s over steps {args.warmup + 1}..{args.steps} ({seconds:.1f} s)",
              flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
