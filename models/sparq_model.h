// A whole model as a .sparq file (docs/format.md): config.json and the
// tokenizer travel inside, so the file runs alone; each tensor is dense
// (f32/f16/bf16), packed (quant/layout.h) or sparse (nm_sparse,
// bitmask_sparse: runtime/kernels/sparse_layout.h). This file is the one place
// that maps a model onto the container, for every writer and reader.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/sparq/sparq_file.h"
#include "models/model_source.h"
#include "quant/layout.h"
#include "runtime/kernels/sparse_layout.h"

namespace sparq {

// One tensor to store: dense, packed (`quant`), or sparse (`nm_sparse`,
// `bitmask_sparse`); at most one of the optionals is set.
struct ModelTensorEntry {
    std::string name;
    Tensor dense;                       // used when no optional below is set
    std::optional<PackedTensor> packed;
    std::optional<NmSparseTensor> nm_sparse;
    std::optional<BitmaskSparseTensor> bitmask_sparse;
    int act_bits = 0;  // packed only: 8 writes the act_bits param (int8 activations in the runtime)

    bool is_dense() const { return !packed && !nm_sparse && !bitmask_sparse; }
};

// Writes a model tensor by tensor, so a pass can hand each one over as
// soon as it is done and free it (a 1B model's packed planes need not all
// sit in memory before the file is written). commit() adds the metadata,
// merged into the conventional keys (config, arch, created_by), and
// renames the file into place; destroyed without commit(), it leaves none.
class SparqModelWriter {
public:
    SparqModelWriter(const std::string& path, const ModelConfig& config, const Tokenizer& tokenizer);
    ~SparqModelWriter();
    void add(const ModelTensorEntry& entry);
    void commit(nlohmann::json metadata);

private:
    std::unique_ptr<SparqWriter> writer_;
    nlohmann::json conventional_;
};

// Writes a model atomically in one call (SparqModelWriter over `tensors`).
void write_sparq_model(const std::string& path, const ModelConfig& config, const Tokenizer& tokenizer,
                       const std::vector<ModelTensorEntry>& tensors, nlohmann::json metadata);

// Bytes the data section spends on one entry (planes rounded up to the
// 64-byte alignment), for file_bits_per_weight estimates.
uint64_t stored_entry_bytes(const ModelTensorEntry& entry);

// Opens a .sparq model for the dequantizing reference path: dense tensors
// are zero-copy views, packed ones dequantized to owned F32. The tokenizer
// and config come from the file. With verify, every checksum is checked.
ModelSource load_sparq_model(const std::string& path, bool verify = false);

// Config and tokenizer of an opened .sparq model, with no tensors loaded
// (the packed runtime uses the planes in place).
ModelSource load_sparq_model_header(const std::string& path, const SparqFile& file);

// A packed tensor of the file as a view over the mapping (no copy).
PackedView packed_view(const SparqTensor& tensor, const std::string& source);

// Scheme of a "quant" tensor from its params (validated).
QuantScheme tensor_quant_scheme(const SparqTensor& tensor, const std::string& source);

// Sparse tensors of the file as views over the mapping (no copy), after the
// plane sizes and check_*_contents (sparse_layout.h) have passed: a hostile
// file is a sparq::Error naming the file, tensor and field.
NmSparseView nm_sparse_view(const SparqTensor& tensor, const std::string& source);
BitmaskSparseView bitmask_sparse_view(const SparqTensor& tensor, const std::string& source);

// Bytes the kernels read for one product over a sparse tensor (all planes).
size_t bitmask_sparse_bytes(const BitmaskSparseView& view);

// The values of any tensor the reference path reads: dense encodings as
// zero-copy views, `quant` and the sparse encodings dequantized to owned F32
// (pruned elements exact zeros). Unknown encodings are an error naming it.
Tensor sparq_tensor_values(const SparqFile& file, const SparqTensor& tensor);

}  // namespace sparq
