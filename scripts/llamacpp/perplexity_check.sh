#!/usr/bin/env bash
# Checks `sparq export` against llama.cpp: exports each shared model to GGUF,
# runs llama.cpp's llama-perplexity on it with the text, ctx and chunks of the
# model's reference/llamacpp.json, and compares with the figure recorded there
# (measured on llama.cpp's own conversion). Also counts the evaluation text's
# tokens with llama-tokenize against the recorded text_tokens_with_bos.
#
# Usage:
#   scripts/llamacpp/perplexity_check.sh [--llamacpp-bin DIR] [--sparq BIN] [--data DIR]
#       [--type f16|f32] [--out DIR] [--threads N] [--tolerance REL] [--models "a b c"] [--llama2c]
#
# Defaults: --llamacpp-bin /work/llamacpp-build/bin (scripts/llamacpp/build.sh),
# --sparq build/tools/sparq, --data $SPARQ_DATA or ../shared/data, --type f16,
# --out a fresh temporary directory, --threads $(nproc), --tolerance 0.0005 (0.05%),
# --models "stories260K small-llama small-llama-v2". --llama2c also exports
# stories260K/stories260K.bin (with tok512.bin) and checks it the same way.
# Prints one line per model and exits 0 when every perplexity is within the
# tolerance and every token count matches, 3 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=/work/llamacpp-build/bin
SPARQ=$ROOT/build/tools/sparq
DATA=${SPARQ_DATA:-$ROOT/../shared/data}
TYPE=f16
OUT=""
THREADS=$(nproc)
TOL=0.0005
MODELS="stories260K small-llama small-llama-v2"
LLAMA2C=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --llamacpp-bin) BIN=$2; shift 2 ;;
        --sparq) SPARQ=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --type) TYPE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --tolerance) TOL=$2; shift 2 ;;
        --models) MODELS=$2; shift 2 ;;
        --llama2c) LLAMA2C=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "perplexity_check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

for tool in llama-perplexity llama-tokenize; do
    [[ -x "$BIN/$tool" ]] || { echo "perplexity_check.sh: $BIN/$tool not found (run scripts/llamacpp/build.sh)" >&2; exit 2; }
done
[[ -x "$SPARQ" ]] || { echo "perplexity_check.sh: $SPARQ not found (ninja -C build sparq)" >&2; exit 2; }
if [[ -z "$OUT" ]]; then OUT=$(mktemp -d -t sparq-ppl-check.XXXXXX); fi
mkdir -p "$OUT"

# reference field from llamacpp.json: ref FILE KEY [SUBKEY]
ref() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=d[sys.argv[2]]
if len(sys.argv) > 3: v=v[sys.argv[3]]
print(v)' "$@"
}

status=0
printf '%-22s %-6s %10s %10s %10s %10s %12s %12s  %s\n' model type ppl ref_ppl ratio rel_diff tokens ref_tokens result

check() {  # check LABEL REFERENCE_DIR EXPORT_ARGS...
    local label=$1 refdir=$2
    shift 2
    local json=$refdir/reference/llamacpp.json
    local text ctx chunks ref_ppl ref_tokens
    text=$DATA/$(ref "$json" text)
    ctx=$(ref "$json" ctx)
    chunks=$(ref "$json" chunks)
    ref_ppl=$(ref "$json" ppl "$TYPE")
    ref_tokens=$(ref "$json" text_tokens_with_bos)
    local gguf=$OUT/$label-$TYPE.gguf
    "$SPARQ" export "$@" -o "$gguf" --type "$TYPE" --quiet --json > "$OUT/$label.export.json"

    local log=$OUT/$label.perplexity.log
    "$BIN/llama-perplexity" -m "$gguf" -f "$text" -c "$ctx" --chunks "$chunks" -t "$THREADS" > "$log" 2>&1
    local ppl
    ppl=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$log")
    [[ -n "$ppl" ]] || { echo "$label: llama-perplexity failed, see $log" >&2; status=3; return; }

    # Counted as the reference's text_tokens_with_bos was: llama-tokenize's defaults (BOS added,
    # escape sequences such as \\ and \n in the text processed, as llama-perplexity also does;
    # llama-perplexity additionally drops one trailing newline of the file), control-token
    # strings kept as plain text.
    local tokens
    tokens=$("$BIN/llama-tokenize" -m "$gguf" -f "$text" --ids --no-parse-special --log-disable 2>/dev/null \
        | python3 -c 'import sys,ast; print(len(ast.literal_eval(sys.stdin.read().strip())))')

    local line
    line=$(python3 -c '
import sys
label, typ, ppl, ref, tol, tok, ref_tok = sys.argv[1:8]
ppl, ref, tol = float(ppl), float(ref), float(tol)
ratio = ppl / ref
rel = ratio - 1.0
ok = abs(rel) <= tol and int(tok) == int(ref_tok)
print("%-22s %-6s %10.4f %10.4f %10.6f %+9.4f%% %12s %12s  %s" % (label, typ, ppl, ref, ratio, 100 * rel, tok, ref_tok, "ok" if ok else "FAIL"))
sys.exit(0 if ok else 3)' "$label" "$TYPE" "$ppl" "$ref_ppl" "$TOL" "$tokens" "$ref_tokens") || status=3
    echo "$line"
}

for m in $MODELS; do
    check "$m" "$DATA/$m" "$DATA/$m/hf"
done
if [[ $LLAMA2C == 1 ]]; then
    check "stories260K-llama2c" "$DATA/stories260K" "$DATA/stories260K/stories260K.bin" \
        --tokenizer "$DATA/stories260K/tok512.bin"
fi
echo "outputs and logs in $OUT"
exit $status
