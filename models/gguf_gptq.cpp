#include "models/gguf_gptq.h"

#include "core/error.h"
#include "core/parallel.h"
#include "formats/gguf/ggml_quantize.h"

namespace sparq {

namespace {

// One fitted ggml block grid per (row, block).
class GgmlBlockGptqGrid final : public GptqGrid {
public:
    GgmlBlockGptqGrid(gguf::GgmlType type, int64_t rows, int64_t cols)
        : type_(type),
          span_(gguf::ggml_type_traits(type).block_size),
          blocks_(cols / span_),
          grids_(static_cast<size_t>(rows * blocks_)) {}

    int64_t span() const override { return span_; }
    void choose(int64_t row, int64_t first, const float* values, int64_t, const float* importance, const double*,
                int64_t) override {
        grids_[static_cast<size_t>(row * blocks_ + first / span_)] = gguf::fit_ggml_block_grid(type_, values, importance);
    }
    float round(int64_t row, int64_t column, float w) const override {
        return gguf::round_to_ggml_grid(grid(row, column / span_), static_cast<int>(column % span_), w);
    }
    const gguf::GgmlBlockGrid& grid(int64_t row, int64_t block) const {
        return grids_[static_cast<size_t>(row * blocks_ + block)];
    }
    int64_t blocks() const { return blocks_; }

private:
    gguf::GgmlType type_;
    int64_t span_, blocks_;
    std::vector<gguf::GgmlBlockGrid> grids_;
};

}  // namespace

std::optional<std::vector<uint8_t>> gptq_quantize_ggml(const float* weight, int64_t rows, int64_t cols,
                                                       const std::vector<double>& hessian, gguf::GgmlType type,
                                                       const GptqOptions& options, const std::string& tensor_name,
                                                       GptqResult& info) {
    if (!gguf::can_quantize_ggml(type)) {
        fail_in({"", tensor_name, ""}, "GPTQ writes Q4_1, Q4_K or Q6_K blocks, not ", gguf::ggml_type_name(type));
    }
    const gguf::GgmlTypeTraits traits = gguf::ggml_type_traits(type);
    if (cols <= 0 || cols % traits.block_size != 0) {
        fail_in({"", tensor_name, "shape"}, "rows of ", cols, " columns are not whole ", gguf::ggml_type_name(type),
                " blocks of ", traits.block_size);
    }
    GgmlBlockGptqGrid grid(type, rows, cols);
    std::vector<float> quantized;
    if (!gptq_round(weight, rows, cols, hessian, grid, options, tensor_name, quantized, info)) return std::nullopt;
    const size_t row_bytes = static_cast<size_t>(grid.blocks()) * traits.type_size;
    std::vector<uint8_t> bytes(static_cast<size_t>(rows) * row_bytes);
    parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            for (int64_t b = 0; b < grid.blocks(); ++b) {
                gguf::pack_ggml_block(grid.grid(r, b), quantized.data() + r * cols + b * traits.block_size,
                                      bytes.data() + r * row_bytes + static_cast<size_t>(b) * traits.type_size);
            }
        }
    });
    return bytes;
}

}  // namespace sparq
