#include "tokenizer/tokenizer.h"

#include <span>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/llama2c_tokenizer.h"
#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/spm_tokenizer.h"

namespace sparq {

std::vector<int32_t> Tokenizer::encode_with_special(std::string_view, bool) const {
    fail("this ", source_kind(), " tokenizer cannot parse special tokens in text; only tokenizer.json tokenizers can");
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string out;
    for (int32_t id : ids) out += token_bytes(id);
    return out;
}

namespace {

std::shared_ptr<Tokenizer> make_spm_tokenizer(Vocabulary vocabulary, std::string bytes, std::string kind,
                                              const std::string& path) {
    try {
        return std::make_shared<SpmTokenizer>(std::move(vocabulary), std::move(bytes), std::move(kind));
    } catch (const Error& e) {
        throw e.with_file(path);
    }
}

// Whether the file's bytes look like JSON text: '{' then '"' or '}' after
// optional whitespace (and a UTF-8 byte order mark). A llama2.c file would
// need a max_token_length of over 8000 bytes to start like that.
bool looks_like_json(std::span<const uint8_t> bytes) {
    size_t i = 0;
    if (bytes.size() >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF) i = 3;
    auto skip_space = [&] {
        while (i < bytes.size() && (bytes[i] == ' ' || bytes[i] == '\t' || bytes[i] == '\n' || bytes[i] == '\r')) ++i;
    };
    skip_space();
    if (i >= bytes.size() || bytes[i] != '{') return false;
    ++i;
    skip_space();
    return i < bytes.size() && (bytes[i] == '"' || bytes[i] == '}');
}

void check_vocab_size(const Tokenizer& tokenizer, int64_t expected_vocab_size, const std::string& path) {
    if (expected_vocab_size <= 0) return;
    if (tokenizer.vocab_size() > expected_vocab_size) {
        fail_in({path, "", ""}, "tokenizer has ", tokenizer.vocab_size(), " pieces, more than the model's vocab_size ",
                expected_vocab_size);
    }
    const Vocabulary& v = tokenizer.vocabulary();
    for (const auto& [name, id] : {std::pair{"bos", v.bos_id}, {"eos", v.eos_id}, {"unk", v.unk_id}, {"pad", v.pad_id}}) {
        if (id >= expected_vocab_size) {
            fail_in({path, "", ""}, "the tokenizer's ", name, " id ", id, " is outside the model's vocab_size ",
                    expected_vocab_size);
        }
    }
}

}  // namespace

// Which reader a file gets is decided by its content, not its name, so a
// renamed file still loads: a SentencePiece ModelProto begins with field 1
// (pieces) as a length-delimited field, byte 0x0A, followed by a non-zero
// length; llama2.c's file begins with a little-endian int32 max_token_length,
// which would have to be 10 + 256k for its first two bytes to look the same
// (k >= 1: pieces hundreds of bytes long, which no tokenizer has). A .json
// name or JSON text is a Hugging Face tokenizer.json. Anything else is read
// as llama2.c's format, whose errors then say so.
std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path, int64_t expected_vocab_size) {
    std::shared_ptr<Tokenizer> tokenizer;
    if (path.ends_with(".json")) {
        tokenizer = load_hf_tokenizer_json(path);
        check_vocab_size(*tokenizer, expected_vocab_size, path);
        return tokenizer;
    }
    const auto file = MappedFile::open(path);
    const std::span<const uint8_t> bytes(file->data(), file->size());
    if (bytes.empty()) fail_in({path, "", ""}, "the tokenizer file is empty");
    if (looks_like_json(bytes)) {
        tokenizer = load_hf_tokenizer_json(path);
        check_vocab_size(*tokenizer, expected_vocab_size, path);
        return tokenizer;
    }
    std::string source(reinterpret_cast<const char*>(bytes.data()), bytes.size());

    if (looks_like_sentencepiece_model(bytes)) {
        SentencePieceModel model = parse_sentencepiece_model(bytes, path);
        tokenizer = make_spm_tokenizer(std::move(model.vocabulary), std::move(source), "sentencepiece", path);
    } else {
        Vocabulary vocabulary;
        try {
            vocabulary = parse_llama2c_tokenizer(bytes, path);
        } catch (const Error& e) {
            throw Error(e.message() +
                            " (read as a llama2.c tokenizer.bin because it does not start like a SentencePiece model)",
                        e.context());
        }
        tokenizer = make_spm_tokenizer(std::move(vocabulary), std::move(source), "llama2c", path);
    }
    check_vocab_size(*tokenizer, expected_vocab_size, path);
    return tokenizer;
}

}  // namespace sparq
