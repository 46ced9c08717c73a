#!/usr/bin/env bash
# The decode loops' software prefetches are hints a compiler may drop
# without a word (runtime/kernels/prefetch_slices.h tells how GCC 12 once
# did): check that the built kernels still contain them. Every AVX3_DL
# sparse Q16 row loop (2:4 int4/int8, bitmask with and without vpexpandb)
# and the dense symmetric row drivers (int4 in each of its three quad
# scalings, int8) must hold a prefetcht0 (the line into L1), and all but
# the 2:4 int4 loop a prefetcht2 (the line further on into L2).
# usage: check_prefetches.sh OBJDUMP KERNEL_LIBRARY
set -euo pipefail
"$1" -d -C --no-show-raw-insn "$2" | awk '
    /^[0-9a-f]+ </ { fn = $0; next }
    /prefetcht[02]/ {
        level = ($0 ~ /prefetcht0/) ? "t0" : "t2"
        if (fn ~ /N_AVX3_DL::Q16Rows</ && !((fn, level) in q16)) { q16[fn, level] = 1; nq[level]++ }
        if (fn ~ /N_AVX3_DL::DenseRowsByDot<(4|8), true, [^<>]*QuadScales[)][0-9]>/ && !((fn, level) in dense)) { dense[fn, level] = 1; nd[level]++ }
    }
    END {
        printf "sparse Q16 row loops with prefetcht0 / prefetcht2: %d / %d (need 4 / 3); dense symmetric int4/int8 drivers: %d / %d (need 4)\n", nq["t0"], nq["t2"], nd["t0"], nd["t2"]
        exit (nq["t0"] >= 4 && nq["t2"] >= 3 && nd["t0"] >= 4 && nd["t2"] >= 4) ? 0 : 1
    }'
