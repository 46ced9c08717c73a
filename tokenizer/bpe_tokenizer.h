// Byte-level BPE from a Hugging Face tokenizer.json (GPT-2, SmolLM2, Llama 3
// and the like), giving exactly the ids of Hugging Face's tokenizers:
//   1. added tokens are split out of the text (leftmost-longest, with their
//      single_word/lstrip/rstrip rules); plain encode() leaves special ones
//      in the text as plain text, encode_with_special() splits them out too
//      (added_tokens.h);
//   2. the pre-tokenizer steps (Split and Digits regexes, then ByteLevel's
//      optional prefix space and GPT-2 regex) cut the rest into words, with
//      PCRE2 standing in for Oniguruma (pre_tokenizer.h, pcre2_regex.h);
//   3. each word's bytes become GPT-2's byte-level characters and are merged
//      by rank, lowest first and leftmost among equals, with a priority
//      queue (O(n log n) per word) as tokenizers' Word::merge_all does
//      (bpe_model.h).
// Text must be valid UTF-8 (as it must be for Hugging Face): invalid input is
// refused with a sparq::Error giving the byte offset.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8_text.h"  // find_invalid_utf8, which encode() applies first
#include "tokenizer/vocabulary.h"

namespace sparq {

class BpeTokenizer : public Tokenizer {
public:
    // `config` holds the special-token settings found beside the file (may
    // be empty). BOS, EOS and PAD come from, in order: tokenizer_config.json's
    // token text, config.json's ids, the post_processor's template, and last
    // the usual names ("<s>", "<|endoftext|>", ...; one special token alone
    // is both BOS and EOS, as in GPT-2). add_bos is tokenizer_config.json's
    // add_bos_token, else whether the template puts a token first.
    // Throws sparq::Error on inconsistent data (a special token that is not
    // in the vocabulary, a regex PCRE2 cannot compile).
    BpeTokenizer(HfTokenizerJson spec, const HfSpecialTokenConfig& config, std::string source_bytes);
    ~BpeTokenizer() override;

    // Control-token text ("<|im_start|>") is plain text here; non-special
    // added tokens are still split out, as both Hugging Face (with
    // split_special_tokens) and llama.cpp (parse_special off) do.
    std::vector<int32_t> encode(std::string_view text, bool add_bos) const override;
    // Hugging Face's default: every added token in the text becomes its id.
    std::vector<int32_t> encode_with_special(std::string_view text, bool add_bos) const override;

    // Byte-level characters back to raw bytes; an added token whose text is
    // not all byte-level characters gives its text as it is (what Hugging
    // Face's ByteLevel decoder does). Control and unused tokens give nothing.
    std::string token_bytes(int32_t id) const override;

    const Vocabulary& vocabulary() const override { return vocabulary_; }
    const std::string& source_bytes() const override { return source_bytes_; }
    std::string source_kind() const override { return "hf-json"; }

    struct Impl;

private:
    std::vector<int32_t> encode_impl(std::string_view text, bool add_bos, bool parse_special) const;

    Vocabulary vocabulary_;
    std::vector<std::string> token_bytes_;
    std::string source_bytes_;
    std::unique_ptr<Impl> impl_;
};

// Reads tokenizer.json at `path`, with tokenizer_config.json and config.json
// from the same folder where present. Errors name the file.
std::shared_ptr<BpeTokenizer> load_hf_tokenizer_json(const std::string& path);

// The same from the file's bytes (e.g. embedded in a .sparq file); `name`
// labels errors.
std::shared_ptr<BpeTokenizer> make_hf_tokenizer(std::string bytes, const std::string& name,
                                                const HfSpecialTokenConfig& config = {});

}  // namespace sparq
