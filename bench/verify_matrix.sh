#!/usr/bin/env bash
# The runtime's proof of correctness on every shared model: for int8, int4,
# int3, 2:4-sparse int4 and 50%-sparse int8 files, `sparq verify` runs the
# packed runtime (SIMD kernels) against the FP32 reference forward on the
# same dequantized weights over the model's evaluation text (ctx and chunks
# from its reference/llamacpp.json) and checks KL <= 1e-3, top-1 >= 99.5%,
# checksums, and that a SIMD kernel ran; the first 64 tokens also run one
# at a time (the decode kernels: dec_kld, dec_top1). Prints one row per file; exits 1
# when any file fails.
# Usage: bench/verify_matrix.sh [--models "stories260K small-llama small-llama-v2"] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
data="${SPARQ_DATA:-$(cd .. && pwd)/shared/data}"
sparq=build/tools/sparq
models="stories260K small-llama small-llama-v2"
threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models="$2"; shift 2;;
    --threads) threads="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
variants=(
  "int8|quantize --bits 8"
  "int4_g128|quantize --bits 4 --group 128"
  "int3_g128|quantize --bits 3 --group 128"
  "2:4_int4_g32|sparsify --pattern 2:4 --bits 4 --group 32"
  "50%_int8|sparsify --sparsity 0.5 --bits 8"
)
failed=0
printf "%-15s %-14s %6s %10s %8s %10s %8s %-10s %s\n" model file ok kld_mean top1 dec_kld dec_top1 kernel failures
for m in $models; do
  ref="$data/$m/reference/llamacpp.json"
  text="$data/$(field "$ref" text)"; ctx=$(field "$ref" ctx); chunks=$(field "$ref" chunks)
  for v in "${variants[@]}"; do
    name=${v%%|*}; cmd=${v#*|}
    f="$out/$m-${name//[:%]/_}.sparq"
    # shellcheck disable=SC2086
    "$sparq" $cmd "$data/$m/hf" -o "$f" --threads "$threads" --quiet --json > /dev/null
    rc=0
    "$sparq" verify "$f" --against "$data/$m/hf" --text "$text" --ctx "$ctx" --chunks "$chunks" \
      --threads "$threads" --quiet --json > "$out/verify.json" || rc=$?
    [ "$rc" -eq 0 ] || failed=1
    python3 - "$out/verify.json" "$m" "$name" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
d = j["decode"]
print("%-15s %-14s %6s %10.2e %8.4f %10.2e %8.4f %-10s %s" % (sys.argv[2], sys.argv[3], j["ok"], j["kld_mean"],
      j["top1_agreement"], d["kld_mean"], d["top1_agreement"], j["kernel"], "; ".join(j.get("failures", [])) or "-"))
PY
  done
done
exit "$failed"
