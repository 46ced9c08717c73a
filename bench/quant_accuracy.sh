#!/usr/bin/env bash
# Accuracy of weight quantization on the shared models: perplexity, its
# increase over the unquantized model, KL divergence and top-1 agreement, for
# each scheme and method given. Each model is evaluated on the text, ctx and
# chunks named in its reference/llamacpp.json.
# Usage: bench/quant_accuracy.sh [--models "stories260K small-llama-v2"] [--schemes "8:0 4:128"]
#        [--methods "rtn mse"] [--extra "--embed-bits 16 --head-bits 16"] [--calib FILE] [--threads N]
# --calib goes to the calibrated methods only (imatrix, gptq, awq, smoothquant):
# sparq refuses an option the chosen method does not read.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${SPARQ_DATA:-$(cd .. && pwd)/shared/data}"
sparq=build/tools/sparq
models="stories260K small-llama-v2 small-llama"
schemes="8:0 4:128"
methods="rtn mse"
extra=""
calib=""
threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models="$2"; shift 2;;
    --schemes) schemes="$2"; shift 2;;
    --methods) methods="$2"; shift 2;;
    --extra) extra="$2"; shift 2;;
    --calib) calib="$2"; shift 2;;
    --threads) threads="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
printf "%-15s %-14s %-5s %8s %10s %9s %9s %8s %7s\n" model scheme method bpw ppl increase kld_mean top1 file_bpw
for m in $models; do
  ref="$data/$m/reference/llamacpp.json"
  text="$data/$(field "$ref" text)"; ctx=$(field "$ref" ctx); chunks=$(field "$ref" chunks)
  "$sparq" eval "$data/$m/hf" --text "$text" --ctx "$ctx" --chunks "$chunks" --threads "$threads" --json --quiet > "$out/base.json"
  base=$(field "$out/base.json" ppl)
  printf "%-15s %-14s %-5s %8s %10.4f %9s %9s %8s %7s\n" "$m" source - - "$base" - - - -
  for s in $schemes; do
    bits=${s%%:*}; group=${s##*:}
    for meth in $methods; do
      q="$out/$m-$bits-$group-$meth.sparq"
      calib_flags=()
      case "$meth" in imatrix|gptq|awq|smoothquant) [ -n "$calib" ] && calib_flags=(--calib "$calib");; esac
      # shellcheck disable=SC2086
      "$sparq" quantize "$data/$m/hf" -o "$q" --bits "$bits" --group "$group" --method "$meth" $extra "${calib_flags[@]}" \
        --threads "$threads" --json --quiet > "$out/q.json"
      "$sparq" eval "$q" --text "$text" --ctx "$ctx" --chunks "$chunks" --ref "$data/$m/hf" --threads "$threads" \
        --json --quiet > "$out/e.json"
      python3 - "$out/q.json" "$out/e.json" "$base" "$m" "$bits" "$group" "$meth" <<'PY'
import json, sys
q = json.load(open(sys.argv[1])); e = json.load(open(sys.argv[2])); base = float(sys.argv[3])
m, bits, group, meth = sys.argv[4:8]
print("%-15s %-14s %-5s %8.4f %10.4f %8.3f%% %9.5f %8.4f %7.3f" % (
    m, q["scheme"], meth, q["bits_per_weight"], e["ppl"], 100 * (e["ppl"] / base - 1), e["kld_mean"],
    e["top1_agreement"], q["file_bits_per_weight"]))
PY
    done
  done
done
