#!/usr/bin/env bash
# Checks `sparq export` for the Llama-family architectures other than Llama
# against llama.cpp: for Mistral (llama.cpp arch "llama"), Qwen2 ("qwen2") and
# MiniCPM ("minicpm") it writes a small config (GQA, F32), synthesizes a
# deterministic peaked model with `sparq synth --peaked`, exports it with
# `sparq export --type f32`, and compares `sparq eval` (the FP32 reference
# forward) with llama.cpp's llama-perplexity on the same text, ctx and chunks,
# with an F32 KV cache (-ctk f32 -ctv f32: llama.cpp's default F16 cache
# rounding would blur the comparison). Bar: |ppl_sparq / ppl_llamacpp - 1| <= tolerance.
#
# llama.cpp ignores Mistral's sliding window, so the Mistral model's window is
# set to ctx (the widest window at which both must agree; a window of W lets a
# token see itself and the W-1 before it). A second Mistral model with a window
# of ctx/2 shows that the window is real: sparq and llama.cpp must disagree there.
#
# A fourth model checks byte-level BPE export (tokenizer.ggml.model "gpt2",
# merges, tokenizer.ggml.pre): Qwen2 with the SmolLM2 tokenizer.json
# (--bpe-tokenizer; skipped when the file is absent), comparing the token count
# of the text (sparq's tokenizer against llama-tokenize) as well as perplexity.
#
# Unless --no-sensitivity, it then breaks each exported file on purpose
# (scripts/llamacpp/gguf_patch.py) and requires llama.cpp's perplexity to move
# by at least --min-shift (default 0.5%, 10x the tolerance): Qwen2 without its
# q/k/v biases, Qwen2 read as "llama" (interleaved-pair RoPE on rows that were
# not permuted for it), wrong rope.freq_base, MiniCPM's residual_scale set to
# scale_depth (not scale_depth/sqrt(n_layers)), its logit_scale inverted, its
# embedding_scale dropped.
#
# Usage:
#   scripts/llamacpp/arch_check.sh [--llamacpp-bin DIR] [--sparq BIN] [--data DIR] [--tokenizer FILE]
#       [--text FILE] [--ctx N] [--chunks N] [--threads N] [--tolerance REL] [--min-shift REL]
#       [--bpe-tokenizer FILE] [--out DIR] [--no-sensitivity]
#
# Defaults: --llamacpp-bin /work/llamacpp-build/bin (scripts/llamacpp/build.sh),
# --sparq build/tools/sparq, --data $SPARQ_DATA or ../shared/data,
# --tokenizer DATA/small-llama/hf/tokenizer.model, --text DATA/text/heldout.txt,
# --bpe-tokenizer DATA/tokenizers/smollm2/tokenizer.json,
# --ctx 256, --chunks 20, --threads 2, --tolerance 0.0005 (0.05%), --min-shift 0.005,
# --out a fresh temporary directory.
# Prints one line per check; exits 0 when all pass, 3 otherwise (2 on bad usage).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=/work/llamacpp-build/bin
SPARQ=$ROOT/build/tools/sparq
DATA=${SPARQ_DATA:-$ROOT/../shared/data}
TOKENIZER=""
BPE_TOKENIZER=""
TEXT=""
CTX=256
CHUNKS=20
THREADS=2
TOL=0.0005
MIN_SHIFT=0.005
OUT=""
SENSITIVITY=1
PATCH="python3 $ROOT/scripts/llamacpp/gguf_patch.py"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --llamacpp-bin) BIN=$2; shift 2 ;;
        --sparq) SPARQ=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --tokenizer) TOKENIZER=$2; shift 2 ;;
        --bpe-tokenizer) BPE_TOKENIZER=$2; shift 2 ;;
        --text) TEXT=$2; shift 2 ;;
        --ctx) CTX=$2; shift 2 ;;
        --chunks) CHUNKS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --tolerance) TOL=$2; shift 2 ;;
        --min-shift) MIN_SHIFT=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --no-sensitivity) SENSITIVITY=0; shift ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "arch_check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
TOKENIZER=${TOKENIZER:-$DATA/small-llama/hf/tokenizer.model}
BPE_TOKENIZER=${BPE_TOKENIZER:-$DATA/tokenizers/smollm2/tokenizer.json}
TEXT=${TEXT:-$DATA/text/heldout.txt}

for tool in llama-perplexity llama-tokenize; do
    [[ -x "$BIN/$tool" ]] || { echo "arch_check.sh: $BIN/$tool not found (run scripts/llamacpp/build.sh)" >&2; exit 2; }
done
[[ -x "$SPARQ" ]] || { echo "arch_check.sh: $SPARQ not found (ninja -C build sparq)" >&2; exit 2; }
for f in "$TOKENIZER" "$TEXT"; do [[ -f "$f" ]] || { echo "arch_check.sh: $f not found" >&2; exit 2; }; done
if (( CTX % 2 != 0 || CTX < 8 )); then echo "arch_check.sh: --ctx must be even and >= 8" >&2; exit 2; fi
if [[ -z "$OUT" ]]; then OUT=$(mktemp -d -t sparq-arch-check.XXXXXX); fi
mkdir -p "$OUT/configs"

# Configs: small, GQA everywhere, vocab 4096 (the small-llama SentencePiece tokenizer's size).
cat > "$OUT/configs/mistral.json" <<EOF
{"architectures":["MistralForCausalLM"],"model_type":"mistral","hidden_size":192,"intermediate_size":512,
 "num_hidden_layers":3,"num_attention_heads":6,"num_key_value_heads":2,"vocab_size":4096,
 "max_position_embeddings":1024,"rms_norm_eps":1e-5,"rope_theta":1000000.0,"tie_word_embeddings":false,
 "hidden_act":"silu","sliding_window":$CTX}
EOF
sed "s/\"sliding_window\":$CTX/\"sliding_window\":$((CTX / 2))/" "$OUT/configs/mistral.json" > "$OUT/configs/mistral-window.json"
cat > "$OUT/configs/qwen2.json" <<'EOF'
{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":256,"intermediate_size":640,
 "num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":2,"vocab_size":4096,
 "max_position_embeddings":1024,"rms_norm_eps":1e-6,"rope_theta":1000000.0,"tie_word_embeddings":true,
 "hidden_act":"silu","use_sliding_window":false}
EOF
cat > "$OUT/configs/minicpm.json" <<'EOF'
{"architectures":["MiniCPMForCausalLM"],"model_type":"minicpm","hidden_size":128,"intermediate_size":320,
 "num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":4096,
 "max_position_embeddings":1024,"rms_norm_eps":1e-5,"rope_theta":10000.0,"tie_word_embeddings":true,
 "hidden_act":"silu","scale_emb":12,"scale_depth":1.4,"dim_model_base":32}
EOF
cat > "$OUT/configs/qwen2-bpe.json" <<'EOF'
{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":128,"intermediate_size":320,
 "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":49152,
 "max_position_embeddings":1024,"rms_norm_eps":1e-6,"rope_theta":1000000.0,"tie_word_embeddings":true,
 "hidden_act":"silu"}
EOF

status=0

llamacpp_ppl() {  # llamacpp_ppl GGUF LOG -> prints the perplexity
    "$BIN/llama-perplexity" -m "$1" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t "$THREADS" \
        -ctk f32 -ctv f32 > "$2" 2>&1 || { echo "arch_check.sh: llama-perplexity failed, see $2" >&2; return 1; }
    local ppl
    ppl=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$2")
    [[ -n "$ppl" ]] || { echo "arch_check.sh: no perplexity in $2" >&2; return 1; }
    echo "$ppl"
}

# TOKARGS: extra arguments naming the tokenizer for export and eval (a tokenizer.json in a model
# directory is given explicitly).
TOKARGS=()

build_model() {  # build_model NAME [TOKENIZER]: synth + export
    local name=$1 tok=${2:-$TOKENIZER}
    "$SPARQ" synth --config "$OUT/configs/$name.json" -o "$OUT/$name" --tokenizer "$tok" --peaked \
        --quiet --json > "$OUT/$name.synth.json"
    "$SPARQ" export "$OUT/$name" "${TOKARGS[@]}" -o "$OUT/$name.gguf" --type f32 --quiet --json \
        > "$OUT/$name.export.json" 2> "$OUT/$name.export.log"
}

sparq_eval() {  # sparq_eval NAME KEY -> KEY of sparq eval's JSON
    "$SPARQ" eval "$OUT/$1" "${TOKARGS[@]}" --text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" --threads "$THREADS" \
        --quiet --json | python3 -c 'import json,sys; print(repr(json.load(sys.stdin)[sys.argv[1]]))' "$2"
}

# compare LABEL A B MODE: MODE "agree" needs |A/B-1| <= TOL, "differ" needs it >= MIN_SHIFT, "equal" A == B.
compare() {
    python3 -c '
import sys
label, a, b, mode, tol, shift = sys.argv[1:7]
a, b, tol, shift = float(a), float(b), float(tol), float(shift)
rel = a / b - 1.0
ok = {"agree": abs(rel) <= tol, "differ": abs(rel) >= shift, "equal": a == b}[mode]
need = {"agree": "<= %.4f%%" % (100 * tol), "differ": ">= %.2f%%" % (100 * shift), "equal": "equal"}[mode]
num = lambda x, w, p=4: ("%*.*f" % (w, p, x)) if abs(x) < 1e8 else ("%*.4e" % (w, x))
pct = ("%+11.6f" % (100 * rel)) if abs(100 * rel) < 1e4 else ("%+11.4e" % (100 * rel))
print("%-34s %s %s %s %s%%  %-10s %s" % (label, num(a, 14), num(b, 14), num(a / b, 10, 6), pct,
                                         need, "ok" if ok else "FAIL"))
sys.exit(0 if ok else 3)' "$@" "$TOL" "$MIN_SHIFT" || status=3
}

echo "text $TEXT, ctx $CTX, chunks $CHUNKS, llama.cpp KV cache f32; outputs in $OUT"
printf '%-34s %14s %14s %10s %12s  %-10s %s\n' check ppl_sparq ppl_llamacpp ratio rel_diff bar result

declare -A REF
for arch in mistral qwen2 minicpm; do
    build_model "$arch"
    sparq_ppl=$(sparq_eval "$arch" ppl)
    ref=$(llamacpp_ppl "$OUT/$arch.gguf" "$OUT/$arch.perplexity.log") || { status=3; continue; }
    REF[$arch]=$ref
    compare "$arch ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["arch"])' "$OUT/$arch.export.json"))" \
        "$sparq_ppl" "$ref" agree
done

# Mistral with a window narrower than ctx: sparq applies it, llama.cpp does not.
build_model mistral-window
sparq_ppl=$(sparq_eval mistral-window ppl)
if ref=$(llamacpp_ppl "$OUT/mistral-window.gguf" "$OUT/mistral-window.perplexity.log"); then
    compare "mistral window $((CTX / 2)) < ctx (ignored)" "$sparq_ppl" "$ref" differ
else
    status=3
fi

# Byte-level BPE (gpt2) tokenizer: same tokens, same perplexity.
if [[ -f "$BPE_TOKENIZER" ]]; then
    mkdir -p "$OUT/qwen2-bpe"
    TOKARGS=(--tokenizer "$OUT/qwen2-bpe/tokenizer.json")
    build_model qwen2-bpe "$BPE_TOKENIZER"
    sparq_ppl=$(sparq_eval qwen2-bpe ppl)
    sparq_tokens=$(sparq_eval qwen2-bpe text_tokens)
    # llama-tokenize as llama-perplexity tokenizes (escapes processed, control-token text kept as text).
    llama_tokens=$("$BIN/llama-tokenize" -m "$OUT/qwen2-bpe.gguf" -f "$TEXT" --ids --no-parse-special --log-disable \
        2>/dev/null | python3 -c 'import sys,ast; print(len(ast.literal_eval(sys.stdin.read().strip())))')
    TOKARGS=()
    pre=$(python3 "$ROOT/scripts/llamacpp/gguf_patch.py" "$OUT/qwen2-bpe.gguf" get tokenizer.ggml.pre)
    if ref=$(llamacpp_ppl "$OUT/qwen2-bpe.gguf" "$OUT/qwen2-bpe.perplexity.log"); then
        compare "qwen2 + gpt2 tokenizer ($pre)" "$sparq_ppl" "$ref" agree
    else
        status=3
    fi
    compare "  text tokens (sparq, llama.cpp)" "$sparq_tokens" "$llama_tokens" equal
else
    echo "(no $BPE_TOKENIZER: byte-level BPE check skipped)"
fi

if [[ $SENSITIVITY == 1 ]]; then
    echo "sensitivity: llama.cpp on deliberately broken files (ppl_sparq column: llama.cpp on the broken file)"
    broken() {  # broken ARCH SLUG LABEL PATCH-COMMANDS...: copies ARCH.gguf, applies the patches, compares with the intact file
        local arch=$1 slug=$2 label=$3
        shift 3
        local f=$OUT/$arch-$slug.gguf
        cp "$OUT/$arch.gguf" "$f"
        local cmd
        for cmd in "$@"; do $PATCH "$f" $cmd > /dev/null; done
        local ppl
        if [[ -z "${REF[$arch]:-}" ]]; then status=3; return; fi
        ppl=$(llamacpp_ppl "$f" "$OUT/$arch-$slug.perplexity.log") || { status=3; return; }
        compare "$arch: $label" "$ppl" "${REF[$arch]}" differ
    }
    no_bias=()
    for ((l = 0; l < 2; ++l)); do
        for t in q k v; do no_bias+=("scale-tensor blk.$l.attn_$t.bias 0"); done
    done
    broken qwen2 no-bias "no q/k/v biases" "${no_bias[@]}"
    broken qwen2 as-llama "as llama (NORM rope)" "rename-arch llama"
    broken qwen2 theta "rope theta 1e4" "set qwen2.rope.freq_base 10000"
    broken mistral theta "rope theta 1e4" "set llama.rope.freq_base 10000"
    broken minicpm residual "residual_scale=scale_depth" "set minicpm.residual_scale 1.4"
    broken minicpm logit "logit_scale inverted" "set minicpm.logit_scale 0.25"
    broken minicpm embedding "embedding_scale 1" "set minicpm.embedding_scale 1"
fi

echo "outputs and logs in $OUT"
exit $status
