#!/usr/bin/env python3
"""sdpa_ref.py: PyTorch's scaled_dot_product_attention on the shapes `sattn bench
--device cuda` times (batch 1, H = C/64 heads of dim 64, causal prefill of T queries,
and one decode query against T cached keys), as the outside reference of
scripts/gpu-check.sh (docs/cuda.md).

Rows, in sattn bench's CSV format (header included, one row written and flushed at a
time so a timeout keeps what was measured):
  sdpa-fp32-cuda  float32, the same dtype as sattn's kernels (the honest comparison);
                  the memory-efficient backend (flash needs 16-bit inputs)
  sdpa-bf16-cuda  bfloat16 with the flash backend: an outside reference line only
Timing: two warm-up calls, then the median of --runs runs, each run repeating the call
until it lasts >= 5 ms, timed with CUDA events.
Exit 3 when torch cannot be imported or sees no GPU (the check goes on without it)."""
import argparse
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--seqs", default="4096,16384,65536")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--budget", type=float, default=50.0, help="stop starting rows after this many seconds")
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except Exception as e:  # noqa: BLE001 - any import failure means: no reference
        print(f"sdpa_ref: torch not importable ({e.__class__.__name__}: {e}); no SDPA reference", flush=True)
        return 3
    if not torch.cuda.is_available():
        print("sdpa_ref: torch sees no CUDA device; no SDPA reference", flush=True)
        return 3
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    C, d = a.dim, 64
    H = C // d
    start = time.time()
    print(f"sdpa_ref: torch {torch.__version__} on {torch.cuda.get_device_name(0)}", flush=True)

    def timed(fn):
        fn(); fn()
        torch.cuda.synchronize()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record(); fn(); e1.record(); torch.cuda.synchronize()
        warm = e0.elapsed_time(e1)
        reps = max(1, min(10000, int(5.0 / max(warm, 1e-4)) + 1)) if warm < 5.0 else 1
        ts = []
        for _ in range(a.runs):
            e0.record()
            for _ in range(reps):
                fn()
            e1.record(); torch.cuda.synchronize()
            ts.append(e0.elapsed_time(e1) / reps / 1e3)
        ts.sort()
        n = len(ts)
        return ts[n // 2] if n % 2 else 0.5 * (ts[n // 2 - 1] + ts[n // 2])

    with open(a.csv, "w") as f:
        f.write("variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10\n")
        f.flush()
        for T in [int(x) for x in a.seqs.split(",")]:
            for name, dtype, backend in (("sdpa-fp32-cuda", torch.float32, SDPBackend.EFFICIENT_ATTENTION),
                                         ("sdpa-bf16-cuda", torch.bfloat16, SDPBackend.FLASH_ATTENTION)):
                for phase in ("prefill", "decode"):
                    if time.time() - start > a.budget:
                        print(f"sdpa_ref: time budget spent, skipping {name} {phase} T={T}", flush=True)
                        continue
                    try:
                        g = torch.Generator(device=dev).manual_seed(T)
                        nq = T if phase == "prefill" else 1
                        q = (torch.rand(1, H, nq, d, device=dev, generator=g) - 0.5) * 3.4641016
                        k = (torch.rand(1, H, T, d, device=dev, generator=g) - 0.5) * 3.4641016
                        v = (torch.rand(1, H, T, d, device=dev, generator=g) - 0.5) * 3.4641016
                        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
                        causal = phase == "prefill"
                        with sdpa_kernel([backend]):
                            med = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
                    except Exception as e:  # noqa: BLE001 - a backend refusing a shape is a skipped row
                        print(f"sdpa_ref: {name} {phase} T={T}: {e.__class__.__name__}: {str(e)[:200]}", flush=True)
                        torch.cuda.empty_cache()
                        continue
                    flops = 4.0 * d * (T * (T + 1) / 2 if causal else T) * H
                    f.write(f"{name},{phase},{C},{H},{T},0,{med:.6e},{flops / med / 1e9:.4f},-1,0,-1\n")
                    f.flush()
                    print(f"{name:16s} {phase:7s} T={T:6d} {med:.3e} s  {flops / med / 1e12:.2f} TFLOP/s", flush=True)
                    del q, k, v
                    torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
