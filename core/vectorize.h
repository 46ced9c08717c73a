// Function multiversioning for the hot plain loops of the offline passes
// (quantization, error sums), which rely on the compiler's auto-vectorizer.
// The portable build targets baseline x86-64 (SSE2, 4 float lanes); on
// x86-64 with GCC these functions are also compiled for AVX2 and AVX-512
// and the loader picks the best one for the CPU. The runtime's kernels use
// Highway instead; these loops are simple enough that the compiler's
// vectorizer does as well, and the scalar code stays the one definition.
//
// Every clone must compute bit-identical results: a library that uses this
// compiles with -ffp-contract=off (so a*b+c is never fused into an FMA
// where AVX2/AVX-512 offer one) and its loops sum in a fixed order.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(SPARQ_NO_CLONES)
#define SPARQ_VECTORIZE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SPARQ_VECTORIZE_CLONES
#endif
