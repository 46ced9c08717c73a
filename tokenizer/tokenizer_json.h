// Reads a Hugging Face tokenizer.json that describes a byte-level BPE
// tokenizer (GPT-2, SmolLM2, Llama 3 and the like) into plain data; the
// BpeTokenizer is built from it. Everything the encoder would have to apply
// and cannot apply exactly is refused with a sparq::Error naming it (a
// normalizer such as NFC, a WordPiece model, a Metaspace pre-tokenizer), so a
// tokenizer either loads and gives Hugging Face's ids or does not load.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sparq {

// How a Split pre-tokenizer treats the text its pattern matches
// (tokenizers' SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct HfPreTokenizerStep {
    enum class Type { Split, ByteLevel };
    Type type = Type::Split;
    // Split; Digits is read as a Split on "\p{N}" (individual_digits) or
    // "\p{N}+", Isolated, which is what it does.
    std::string pattern;
    bool literal = false;  // pattern.String: plain text, not a regex
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
    // ByteLevel: a space before each piece not starting with one, then the
    // GPT-2 regex split (use_regex), then bytes -> byte-level characters.
    bool add_prefix_space = false;
    bool use_regex = true;
};

struct HfAddedToken {
    int32_t id = -1;
    std::string content;
    bool special = false;
    bool single_word = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = true;
};

struct HfTokenizerJson {
    // model (type "BPE"): model.vocab (in no particular order), merges in rank order.
    std::vector<std::pair<std::string, int32_t>> vocab;
    std::vector<std::pair<std::string, std::string>> merges;
    std::optional<std::string> unk_token;
    bool byte_fallback = false;
    bool fuse_unk = false;
    bool ignore_merges = false;

    std::vector<HfAddedToken> added_tokens;  // ids as Hugging Face assigns them (checked against the file's)
    // The pre-tokenizer, Sequences flattened; the last step is ByteLevel.
    std::vector<HfPreTokenizerStep> pre_tokenizer;
    // Special-token ids the post_processor puts before and after a single
    // sequence (TemplateProcessing, RobertaProcessing, BertProcessing).
    std::vector<int32_t> template_prefix;
    std::vector<int32_t> template_suffix;
};

// Parses tokenizer.json text. `file` names the file in errors. Checks: valid
// JSON; model.type "BPE"; vocab ids non-negative, unique, and without large
// holes; every merge's two sides and their concatenation in the vocabulary;
// added tokens' ids as Hugging Face's tokenizers would assign them;
// normalizer absent or empty; pre-tokenizer built from Split, Digits and
// ByteLevel ending in ByteLevel; decoder ByteLevel (or absent).
HfTokenizerJson parse_tokenizer_json(std::string_view text, const std::string& file);

// Special-token settings Hugging Face keeps beside tokenizer.json:
// tokenizer_config.json (bos_token, eos_token, pad_token as text,
// add_bos_token) and the model's config.json (bos_token_id, eos_token_id,
// pad_token_id; a list of eos ids gives its first).
struct HfSpecialTokenConfig {
    std::optional<std::string> bos_token, eos_token, pad_token;
    std::optional<int32_t> bos_id, eos_id, pad_id;
    std::optional<bool> add_bos;
};

// Reads tokenizer_config.json and config.json from `directory` where they
// exist (a missing file or field is simply absent); a file that is not JSON
// throws sparq::Error naming it.
HfSpecialTokenConfig read_hf_special_token_config(const std::string& directory);

// The raw byte each of GPT-2's 256 byte-level characters stands for, and the
// character (as UTF-8) for each byte.
const std::string& byte_level_char(uint8_t byte);
// The byte for a byte-level code point, or -1.
int byte_level_byte(uint32_t code_point);

}  // namespace sparq
