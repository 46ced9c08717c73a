#!/usr/bin/env bash
# The decode loops' software prefetches are hints a compiler may drop
# without a word (runtime/kernels/prefetch_slices.h tells how GCC 12 once
# did): check that the built kernels still contain them. Every AVX3_DL
# sparse Q16 row loop (2:4 int4/int8, bitmask with and without vpexpandb)
# and the dense symmetric int4/int8 row drivers must hold a prefetcht0.
# usage: check_prefetches.sh OBJDUMP KERNEL_LIBRARY
set -euo pipefail
"$1" -d -C --no-show-raw-insn "$2" | awk '
    /^[0-9a-f]+ </ { fn = $0; next }
    /prefetcht0/ {
        if (fn ~ /N_AVX3_DL::Q16Rows</ && !(fn in q16)) { q16[fn] = 1; nq++ }
        if (fn ~ /N_AVX3_DL::DenseRowsByDot<(4|8), true>/ && !(fn in dense)) { dense[fn] = 1; nd++ }
    }
    END {
        printf "sparse Q16 row loops with prefetches: %d (need 4); dense symmetric int4/int8 drivers: %d (need 2)\n", nq, nd
        exit (nq >= 4 && nd >= 2) ? 0 : 1
    }'
