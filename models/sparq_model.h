// A whole model as a .sparq file (docs/format.md): config.json and the
// tokenizer travel inside, so the file runs alone; each tensor is dense
// (f32/f16/bf16) or packed (quant/layout.h). This file is the one place
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

namespace sparq {

// One tensor to store: dense, or packed.
struct ModelTensorEntry {
    std::string name;
    Tensor dense;                       // used when packed is empty
    std::optional<PackedTensor> packed;
};

// Writes a model atomically. `metadata` is merged into the conventional
// keys (config, arch, created_by) the writer fills in.
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

}  // namespace sparq
