// The calibration cache (calibration.h5): the statistics of every block's
// input spaces, computed once by `sparq calibrate` (or a calibrated
// `sparq quantize`) and reused while the model, the data and the sampling
// match. Layout (docs/calibration.md shows it as h5dump prints it):
//
//   /                      attributes: format, version, model_checksum,
//                          data_checksum, samples, samples_drawn, len,
//                          seed, tokens,
//                          num_layers, hidden_size, intermediate_size,
//                          q_dim, data_path, created_by
//   /layers/<l>/<space>    one group per block l and input space
//                          (attn_input, attn_output, mlp_input, mlp_hidden);
//                          attributes tokens, dim, linears
//     hessian              float32 [dim, dim]: mean of x x^T (optional)
//     mean_abs, max_abs, mean_square   float32 [dim]
//   every dataset carries an attribute xxh64 (checksum of its float32
//   little-endian bytes), so corruption HDF5 itself cannot see is caught.
//
// Reading is hostile-input safe: types, ranks, dimensions and checksums are
// checked and every problem is a sparq::Error naming the file and the
// dataset. Writing goes to a temporary file in the destination directory,
// renamed into place on commit.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "calibration/statistics.h"
#include "models/model_source.h"

namespace sparq {

// What a cache was computed from; two caches are interchangeable when all
// of it matches.
struct CalibrationKey {
    std::string model_checksum;
    std::string data_checksum;
    int64_t samples = 0;
    int64_t len = 0;
    uint64_t seed = 0;
};

// Why `found` cannot stand in for `wanted` ("the model differs", ...), or
// nullopt when it can.
std::optional<std::string> calibration_key_mismatch(const CalibrationKey& found, const CalibrationKey& wanted);

// xxh64 over the config, every tensor's name, dtype, shape and bytes, and
// the tokenizer: any change to what calibration reads changes it.
std::string model_checksum(const ModelSource& model);

struct CacheHeader {
    CalibrationKey key;         // samples: as asked (a short text gives fewer)
    int64_t samples_drawn = 0;
    int64_t tokens = 0;         // samples_drawn x len
    int64_t num_layers = 0, hidden_size = 0, intermediate_size = 0, q_dim = 0;
    std::string data_path;
};

class StatisticsCacheWriter {
public:
    // Creates the temporary file next to `path` and writes the root attributes.
    StatisticsCacheWriter(std::string path, const CacheHeader& header);
    ~StatisticsCacheWriter();
    StatisticsCacheWriter(const StatisticsCacheWriter&) = delete;
    StatisticsCacheWriter& operator=(const StatisticsCacheWriter&) = delete;

    void write(int64_t layer, InputSpace space, const ActivationStatistics& statistics);
    // Closes, syncs and renames the file into place.
    void commit();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

class StatisticsCacheReader {
public:
    // Opens the file and reads the root attributes; throws sparq::Error
    // naming the file when it is not a sparq calibration cache.
    explicit StatisticsCacheReader(std::string path);
    ~StatisticsCacheReader();
    StatisticsCacheReader(const StatisticsCacheReader&) = delete;
    StatisticsCacheReader& operator=(const StatisticsCacheReader&) = delete;

    const CacheHeader& header() const;
    // Throws when the cache's shapes do not fit the model's config.
    void check_shape(const ModelConfig& config) const;
    // Reads one space, checking type, dimensions (dim from the config),
    // checksums and finite values. The Hessian is read when with_hessian.
    ActivationStatistics read(int64_t layer, InputSpace space, int64_t dim, bool with_hessian) const;
    // Reads every group once (checks only), so a damaged cache is rejected
    // before any of it is used.
    void verify_all(const ModelConfig& config, bool with_hessian) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sparq
