// Reads llama2.c's tokenizer.bin: a little-endian int32 max_token_length,
// then one record per token {float32 score, int32 length, length bytes}.
// The file does not store how many tokens it holds (llama2.c takes that from
// the checkpoint), so we read records until the file ends and let the caller
// compare the count with the checkpoint's vocab_size.
//
// llama2.c's exporter writes SentencePiece pieces with U+2581 turned into
// spaces and BOS/EOS as "\n<s>\n" / "\n</s>\n"; we undo both so the result
// is the same vocabulary as the SentencePiece model it came from.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "tokenizer/vocabulary.h"

namespace sparq {

// Ids 0, 1, 2 are <unk>, <s>, </s> (llama2.c's fixed layout); pieces of the
// exact form "<0xXX>" are BYTE. Throws sparq::Error naming `file` and the
// record index on truncation, negative lengths, lengths past the end of the
// file, or NaN scores.
Vocabulary parse_llama2c_tokenizer(std::span<const uint8_t> bytes, const std::string& file);

}  // namespace sparq
