// Calibration samples: N sequences of L tokens drawn deterministically from
// a text with the model's tokenizer.
//
// Input: a plain text file (one stream, read byte for byte) or JSON lines
// (.jsonl / .jsonlines / .ndjson: one object per line with a string field
// "text"; blank lines skipped; each document starts with BOS when the model
// adds one). The stream is cut into floor(tokens / L) non-overlapping
// windows and N of them are chosen with the seed (SplitMix64 and a partial
// Fisher-Yates shuffle, so every platform draws the same windows), kept in
// text order. Where the model uses BOS, each window's first token is
// replaced by BOS, as llama-perplexity does with its chunks, so the model
// sees calibration text the way it sees evaluation text. When the text
// holds fewer than N windows, all of them are used and a warning says so.
// N = all (kAllCalibrationWindows) takes every window, with no warning:
// the whole text, as llama-imatrix reads its file, and no seed to draw.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace sparq {

// `--calib-samples all`: more windows than any text holds.
inline constexpr int64_t kAllCalibrationWindows = std::numeric_limits<int64_t>::max();

// "all" or a positive decimal count, as written on the command line or in a
// recipe. Throws sparq::Error naming `field` otherwise.
int64_t parse_calibration_samples(std::string_view text, std::string_view field);
// The same from a recipe's or pass's JSON options: "all" or an integer.
int64_t calibration_samples_from_json(const nlohmann::json& value, std::string_view field);
// The inverse, for messages and option dumps: "all" or the number.
std::string calibration_samples_name(int64_t samples);

struct CalibrationDataOptions {
    std::string path;
    int64_t samples = 128;
    int64_t len = 512;
    uint64_t seed = 0;
};

struct CalibrationSamples {
    int64_t samples = 0;  // drawn (<= requested)
    int64_t len = 0;
    std::vector<int32_t> tokens;  // samples x len
    int64_t text_tokens = 0;      // tokens in the whole stream
    std::string data_checksum;    // of the file's bytes ("xxh64:<16 hex digits>")
    std::vector<std::string> warnings;

    const int32_t* sample(int64_t s) const { return tokens.data() + s * len; }
};

// Throws sparq::Error naming the file (and line, for JSON lines) when it
// cannot be read, a line is not an object with a string "text", or the text
// holds less than one sample of L tokens; options out of range name the
// flag (--calib-samples, --calib-len).
CalibrationSamples draw_calibration_samples(const CalibrationDataOptions& options, const Tokenizer& tokenizer);

// xxh64 of bytes as "xxh64:<16 lowercase hex digits>".
std::string xxh64_checksum(const void* data, size_t size);

}  // namespace sparq
