# gpu-table.awk — scripts/gpu-check.sh's tables from the bench and SDPA CSV rows (no header):
# variant,phase,C,H,T,k,median_s,gflops,... Variables: k (the sparse k), j (indexer heads).
# Table 1: per-query sparse kernels and dense flash against PyTorch SDPA (ms per call).
# Table 2: tblock (tile-shared blocks) against the CUDA flash kernel, prefill and backward.
{ t[$1 SUBSEP $2 SUBSEP $5] = $7; g[$1 SUBSEP $2 SUBSEP $5] = $8; T[$5] = 1 }
function f(x) { return x == "" ? "-" : sprintf("%.3g", x * 1e3) }
function r(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
function gf(x) { return x == "" ? "-" : sprintf("%.3g", x) }
END {
    printf "C 512, 8 heads of d 64, batch 1, float32; ms per call\n"
    b = k >= 32 ? 16 : int(k / 2)
    printf "index+softmax: k %s, r 16, J %s; block+softmax: k %s (b %d, n %d)\n", k, j, k, b, k / b
    printf "| phase | T | dense-flash | index | block | SDPA fp32 | SDPA bf16 | flash/SDPA32 | SDPA32/index | SDPA32/block | dense/index | dense/block |\n"
    printf "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    n = 0; for (x in T) ts[++n] = x + 0
    for (i = 1; i <= n; i++) for (m = i + 1; m <= n; m++) if (ts[m] < ts[i]) { y = ts[i]; ts[i] = ts[m]; ts[m] = y }
    split("prefill decode", ph, " ")
    for (p = 1; p <= 2; p++) for (i = 1; i <= n; i++) {
        P = ph[p]; x = ts[i]
        fl = t["dense-flash-cuda" SUBSEP P SUBSEP x]
        ix = ""; for (key in t) { split(key, kk, SUBSEP); if (kk[1] ~ /^index\+softmax-cuda/ && kk[2] == P && kk[3] == x) ix = t[key] }
        bl = t["block+softmax-cuda" SUBSEP P SUBSEP x]
        s32 = t["sdpa-fp32-cuda" SUBSEP P SUBSEP x]; s16 = t["sdpa-bf16-cuda" SUBSEP P SUBSEP x]
        printf "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", P, x, f(fl), f(ix), f(bl), f(s32), f(s16),
               r(fl, s32), r(s32, ix), r(s32, bl), r(fl, ix), r(fl, bl)
    }
    printf "Targets: flash/SDPA32 <= 2 at 16K; SDPA32/index and SDPA32/block > 1 from some T <= 16K and >= 4 at 64K;\n"
    printf "decode dense/sparse >= 5 at 64K. Ratios > 1 mean the second is faster.\n\n"
    printf "tblock+softmax (tile-shared blocks, causal tile selection included in prefill) vs the CUDA flash kernel\n"
    printf "| T | flash prefill ms | tblock prefill ms | flash/tblock | flash GFLOP/s | tblock GFLOP/s | tblock/flash GFLOP/s | tblock backward ms | tblock backward GFLOP/s |\n"
    printf "|---|---|---|---|---|---|---|---|---|\n"
    for (i = 1; i <= n; i++) {
        x = ts[i]
        fl = t["dense-flash-cuda" SUBSEP "prefill" SUBSEP x]; tb = t["tblock+softmax-cuda" SUBSEP "prefill" SUBSEP x]
        if (fl == "" && tb == "") continue
        fg = g["dense-flash-cuda" SUBSEP "prefill" SUBSEP x]; tg = g["tblock+softmax-cuda" SUBSEP "prefill" SUBSEP x]
        bw = t["tblock+softmax-cuda" SUBSEP "backward" SUBSEP x]; bg = g["tblock+softmax-cuda" SUBSEP "backward" SUBSEP x]
        printf "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", x, f(fl), f(tb), r(fl, tb), gf(fg), gf(tg), r(tg, fg), f(bw), gf(bw == "" ? "" : bg)
    }
    printf "GFLOP/s count useful work (attended pairs; tblock's selection is timed, not counted). CPU target: tblock/flash\n"
    printf "GFLOP/s >= 0.5 (docs/tblock.md). No CUDA flash backward exists to compare the backward with.\n"
}
