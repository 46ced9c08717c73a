// Rebuilding a tokenizer from the bytes a .sparq file embeds, so packed
// models run without the original tokenizer file beside them.
#include <span>

#include "core/error.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/llama2c_tokenizer.h"
#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/tokenizer.h"

namespace sparq {

std::shared_ptr<Tokenizer> load_tokenizer_from_bytes(const std::string& bytes, const std::string& kind,
                                                     int64_t expected_vocab_size, const std::string& source,
                                                     const SpecialTokenSettings& special) {
    const std::span<const uint8_t> view(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    const std::string name = source + " (embedded " + kind + " tokenizer)";
    std::shared_ptr<Tokenizer> tokenizer;
    if (kind == "sentencepiece") {
        SentencePieceModel model = parse_sentencepiece_model(view, name);
        tokenizer = std::make_shared<SpmTokenizer>(std::move(model.vocabulary), bytes, kind);
    } else if (kind == "llama2c") {
        tokenizer = std::make_shared<SpmTokenizer>(parse_llama2c_tokenizer(view, name), bytes, kind);
    } else if (kind == "hf-json") {
        HfSpecialTokenConfig config;
        config.bos_id = special.bos_id;
        config.eos_id = special.eos_id;
        config.add_bos = special.add_bos;
        tokenizer = make_hf_tokenizer(bytes, name, config);
    } else {
        fail_in({source, "", "blobs.tokenizer.kind"}, "unknown tokenizer kind '", kind,
                "' (expected sentencepiece, llama2c or hf-json)");
    }
    if (expected_vocab_size > 0 && tokenizer->vocab_size() > expected_vocab_size) {
        fail_in({source, "", "blobs.tokenizer"}, "the embedded tokenizer has ", tokenizer->vocab_size(),
                " pieces, more than the model's vocab_size ", expected_vocab_size);
    }
    return tokenizer;
}

}  // namespace sparq
