#include "tokenizer/tokenizer.h"

#include <span>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/llama2c_tokenizer.h"
#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/spm_tokenizer.h"

namespace sparq {

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

}  // namespace

// Which reader a file gets is decided by its content, not its name, so a
// renamed file still loads: a SentencePiece ModelProto begins with field 1
// (pieces) as a length-delimited field, byte 0x0A, followed by a non-zero
// length; llama2.c's file begins with a little-endian int32 max_token_length,
// which would have to be 10 + 256k for its first two bytes to look the same
// (k >= 1: pieces hundreds of bytes long, which no tokenizer has). Anything
// else is read as llama2.c's format, whose errors then say so. The .json
// check is by name: tokenizer.json is text and not supported yet.
std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path, int64_t expected_vocab_size) {
    if (path.ends_with(".json")) {
        fail_in({path, "", ""},
                "Hugging Face tokenizer.json is not supported yet; give a SentencePiece tokenizer.model "
                "or a llama2.c tokenizer.bin");
    }
    const auto file = MappedFile::open(path);
    const std::span<const uint8_t> bytes(file->data(), file->size());
    if (bytes.empty()) fail_in({path, "", ""}, "the tokenizer file is empty");
    std::string source(reinterpret_cast<const char*>(bytes.data()), bytes.size());

    std::shared_ptr<Tokenizer> tokenizer;
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

    if (expected_vocab_size > 0 && tokenizer->vocab_size() != expected_vocab_size) {
        fail_in({path, "", ""}, "tokenizer has ", tokenizer->vocab_size(), " pieces, the model's vocab_size is ",
                expected_vocab_size);
    }
    return tokenizer;
}

}  // namespace sparq
