#include "tokenizer/tokenizer.h"

#include "core/error.h"

namespace sparq {

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string out;
    for (int32_t id : ids) out += token_bytes(id);
    return out;
}

std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path, int64_t expected_vocab_size) {
    fail_in({path, "", ""}, "tokenizer loading is not implemented yet");
}

}  // namespace sparq
