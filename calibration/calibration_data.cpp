#include "calibration/calibration_data.h"

#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "core/mapped_file.h"

namespace sparq {

std::string xxh64_checksum(const void* data, size_t size) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH64(data, size, 0)));
    return std::string("xxh64:") + hex;
}

namespace {

bool is_json_lines(const std::string& path) {
    for (const char* ext : {".jsonl", ".jsonlines", ".ndjson"}) {
        const std::string e(ext);
        if (path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0) return true;
    }
    return false;
}

std::vector<int32_t> json_lines_stream(const std::string& path, const std::string& bytes, const Tokenizer& tokenizer) {
    const bool bos = tokenizer.vocabulary().add_bos;
    std::vector<int32_t> stream;
    size_t start = 0;
    int64_t line_number = 0;
    while (start < bytes.size()) {
        size_t end = bytes.find('\n', start);
        if (end == std::string::npos) end = bytes.size();
        ++line_number;
        const std::string line = bytes.substr(start, end - start);
        start = end + 1;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const ErrorContext context{path, "", "line " + std::to_string(line_number)};
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
            fail_in(context, "not valid JSON (JSON lines need one object per line): ", e.what());
        }
        if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
            fail_in(context, "expected an object with a string field \"text\"");
        }
        const std::vector<int32_t> ids = tokenizer.encode(j["text"].get<std::string>(), bos);
        stream.insert(stream.end(), ids.begin(), ids.end());
    }
    return stream;
}

// SplitMix64: a tiny generator with a fixed output on every platform
// (std:: distributions are implementation-defined).
struct SplitMix64 {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // Uniform in [0, bound) without modulo bias.
    uint64_t below(uint64_t bound) {
        const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
        uint64_t v;
        do v = next();
        while (v >= limit);
        return v % bound;
    }
};

}  // namespace

int64_t parse_calibration_samples(std::string_view text, std::string_view field) {
    if (text == "all") return kAllCalibrationWindows;
    int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < 1) {
        fail_in({"", "", std::string(field)}, "must be a positive number of samples or 'all', got '", text, "'");
    }
    return value;
}

int64_t calibration_samples_from_json(const nlohmann::json& value, std::string_view field) {
    return value.is_string() ? parse_calibration_samples(value.get<std::string>(), field) : value.get<int64_t>();
}

std::string calibration_samples_name(int64_t samples) {
    return samples == kAllCalibrationWindows ? "all" : std::to_string(samples);
}

CalibrationSamples draw_calibration_samples(const CalibrationDataOptions& options, const Tokenizer& tokenizer) {
    if (options.samples < 1) fail_in({"", "", "--calib-samples"}, "must be at least 1, got ", options.samples);
    if (options.len < 2) fail_in({"", "", "--calib-len"}, "must be at least 2 tokens, got ", options.len);
    if (options.path.empty()) fail_in({"", "", "--calib"}, "a calibration text file is required");
    const std::string bytes = read_text_file(options.path);
    CalibrationSamples out;
    out.len = options.len;
    out.data_checksum = xxh64_checksum(bytes.data(), bytes.size());
    const std::vector<int32_t> stream = is_json_lines(options.path)
                                            ? json_lines_stream(options.path, bytes, tokenizer)
                                            : tokenizer.encode(bytes, false);
    out.text_tokens = static_cast<int64_t>(stream.size());
    const int64_t windows = out.text_tokens / options.len;
    if (windows < 1) {
        fail_in({options.path, "", ""}, "holds ", out.text_tokens, " tokens, fewer than one calibration sample of ",
                options.len, " (lower --calib-len or give a longer text)");
    }
    std::vector<int64_t> chosen(static_cast<size_t>(windows));
    std::iota(chosen.begin(), chosen.end(), int64_t{0});
    if (windows > options.samples) {
        SplitMix64 rng{options.seed};
        for (int64_t i = 0; i < options.samples; ++i) {
            const int64_t j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(windows - i)));
            std::swap(chosen[i], chosen[j]);
        }
        chosen.resize(static_cast<size_t>(options.samples));
        std::sort(chosen.begin(), chosen.end());
    } else if (windows < options.samples && options.samples != kAllCalibrationWindows) {
        out.warnings.push_back(options.path + " holds " + std::to_string(out.text_tokens) + " tokens: " +
                               std::to_string(windows) + " samples of " + std::to_string(options.len) +
                               " tokens instead of the " + std::to_string(options.samples) + " asked");
    }
    out.samples = static_cast<int64_t>(chosen.size());
    out.tokens.reserve(static_cast<size_t>(out.samples * out.len));
    const bool bos = tokenizer.vocabulary().add_bos;
    for (int64_t w : chosen) {
        const auto first = stream.begin() + w * options.len;
        const size_t at = out.tokens.size();
        out.tokens.insert(out.tokens.end(), first, first + options.len);
        if (bos) out.tokens[at] = tokenizer.bos_id();
    }
    return out;
}

}  // namespace sparq
