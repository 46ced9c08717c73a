#include "models/sparq_model.h"

#include "core/error.h"
#include "models/gguf_model.h"
#include "quant/quantize_tensor.h"

namespace sparq {

namespace {

std::span<const uint8_t> bytes_of(const void* p, size_t n) { return {static_cast<const uint8_t*>(p), n}; }

uint64_t round_up_64(uint64_t n) { return (n + 63) / 64 * 64; }

std::string arch_short_name(const ModelConfig& c) {
    if (c.architecture == "MistralForCausalLM") return "mistral";
    if (c.architecture == "Qwen2ForCausalLM") return "qwen2";
    if (c.architecture == "MiniCPMForCausalLM") return "minicpm";
    return "llama";
}

// The container form of a sparse entry (docs/format.md, nm_sparse and
// bitmask_sparse): params as the quant encoding's plus n and m, planes in
// the order the format lists them.
StoredTensor sparse_stored_tensor(const ModelTensorEntry& e) {
    StoredTensor st;
    st.name = e.name;
    if (e.nm_sparse) {
        const NmSparseTensor& t = *e.nm_sparse;
        const QuantScheme& q = t.scheme.quant;
        st.encoding = "nm_sparse";
        st.shape = {t.rows, t.cols};
        st.params = {{"n", t.scheme.n}, {"m", t.scheme.m}, {"bits", q.bits}, {"group", q.group},
                     {"symmetric", q.symmetric}};
        st.planes.push_back({"values", bytes_of(t.values.data(), t.values.size())});
        st.planes.push_back({"indices", bytes_of(t.indices.data(), t.indices.size())});
        st.planes.push_back({"scales", bytes_of(t.scales.data(), t.scales.size() * sizeof(uint16_t))});
        if (!q.symmetric) st.planes.push_back({"zeros", bytes_of(t.zeros.data(), t.zeros.size())});
        return st;
    }
    const BitmaskSparseTensor& t = *e.bitmask_sparse;
    st.encoding = "bitmask_sparse";
    st.shape = {t.rows, t.cols};
    st.params = {{"bits", t.scheme.bits}, {"group", t.scheme.group}, {"symmetric", t.scheme.symmetric}};
    st.planes.push_back({"mask", bytes_of(t.mask.data(), t.mask.size())});
    st.planes.push_back({"values", bytes_of(t.values.data(), t.values.size())});
    st.planes.push_back({"row_offsets", bytes_of(t.row_offsets.data(), t.row_offsets.size() * sizeof(uint64_t))});
    st.planes.push_back({"scales", bytes_of(t.scales.data(), t.scales.size() * sizeof(uint16_t))});
    if (!t.scheme.symmetric) st.planes.push_back({"zeros", bytes_of(t.zeros.data(), t.zeros.size())});
    return st;
}

void check_plane_size(const SparqTensor& t, const SparqPlane& p, size_t expected, const std::string& what,
                      const std::string& source) {
    if (p.size != expected) {
        fail_in({source, t.name, "planes." + p.name + ".size"}, "is ", p.size, " bytes, ", what, " and shape ",
                shape_string(t.shape), " need ", expected);
    }
}

// The quant params shared by the sparse encodings; FP16 values (bits 16,
// reserved by the format) have no reader yet.
QuantScheme sparse_value_scheme(const SparqTensor& t, const std::string& source) {
    if (t.shape.size() != 2 || t.shape[1] < 1) {
        fail_in({source, t.name, "shape"}, "a ", t.encoding, " tensor must have rank 2 and at least one column, got ",
                shape_string(t.shape));
    }
    if (t.params.contains("bits") && t.params["bits"] == 16) {
        fail_in({source, t.name, "params.bits"}, t.encoding, " with FP16 values (bits 16) is not supported by this reader");
    }
    return tensor_quant_scheme(t, source);
}

}  // namespace

uint64_t stored_entry_bytes(const ModelTensorEntry& e) {
    if (e.nm_sparse) {
        const NmSparseTensor& t = *e.nm_sparse;
        return round_up_64(t.values.size()) + round_up_64(t.indices.size()) + round_up_64(t.scales.size() * 2) +
               round_up_64(t.zeros.size());
    }
    if (e.bitmask_sparse) {
        const BitmaskSparseTensor& t = *e.bitmask_sparse;
        return round_up_64(t.mask.size()) + round_up_64(t.values.size()) + round_up_64(t.row_offsets.size() * 8) +
               round_up_64(t.scales.size() * 2) + round_up_64(t.zeros.size());
    }
    if (!e.packed) return round_up_64(e.dense.nbytes);
    const PackedGeometry g = packed_geometry(e.packed->scheme, e.packed->rows, e.packed->cols);
    return round_up_64(g.code_bytes) + round_up_64(g.scale_bytes) + round_up_64(g.zero_bytes);
}

SparqModelWriter::SparqModelWriter(const std::string& path, const ModelConfig& config, const Tokenizer& tokenizer)
    : writer_(std::make_unique<SparqWriter>(path)) {
    conventional_["config"] = nlohmann::json::parse(config_to_json(config));
    conventional_["arch"] = arch_short_name(config);
    conventional_["created_by"] = {{"tool", "sparq"}, {"version", "0.1.0"}};
    const Vocabulary& vocab = tokenizer.vocabulary();
    conventional_["tokenizer"] = {{"kind", tokenizer.source_kind()}, {"bos_id", vocab.bos_id},
                                  {"eos_id", vocab.eos_id}, {"add_bos", vocab.add_bos}};
    const std::string& tok = tokenizer.source_bytes();
    writer_->set_tokenizer(tokenizer.source_kind(), bytes_of(tok.data(), tok.size()));
}

SparqModelWriter::~SparqModelWriter() = default;

void SparqModelWriter::add(const ModelTensorEntry& e) {
    if (e.nm_sparse || e.bitmask_sparse) {
        writer_->add_tensor(sparse_stored_tensor(e));
        return;
    }
    if (!e.packed) {
        writer_->add_dense(e.name, e.dense);
        return;
    }
    const PackedTensor& p = *e.packed;
    StoredTensor st;
    st.name = e.name;
    st.encoding = "quant";
    st.shape = {p.rows, p.cols};
    st.params = {{"bits", p.scheme.bits}, {"group", p.scheme.group}, {"symmetric", p.scheme.symmetric}};
    if (e.act_bits != 0) st.params["act_bits"] = e.act_bits;
    st.planes.push_back({"codes", bytes_of(p.codes.data(), p.codes.size())});
    st.planes.push_back({"scales", bytes_of(p.scales.data(), p.scales.size() * sizeof(uint16_t))});
    if (!p.scheme.symmetric) st.planes.push_back({"zeros", bytes_of(p.zeros.data(), p.zeros.size())});
    writer_->add_tensor(st);
}

void SparqModelWriter::commit(nlohmann::json metadata) {
    if (!metadata.is_object()) metadata = nlohmann::json::object();
    for (const auto& [key, value] : conventional_.items()) metadata[key] = value;
    writer_->set_metadata(std::move(metadata));
    writer_->commit();
}

void write_sparq_model(const std::string& path, const ModelConfig& config, const Tokenizer& tokenizer,
                       const std::vector<ModelTensorEntry>& tensors, nlohmann::json metadata) {
    SparqModelWriter writer(path, config, tokenizer);
    for (const auto& e : tensors) writer.add(e);
    writer.commit(std::move(metadata));
}

QuantScheme tensor_quant_scheme(const SparqTensor& t, const std::string& source) {
    const ErrorContext where{source, t.name, "params"};
    QuantScheme s;
    try {
        s.bits = t.params.at("bits").get<int>();
        s.group = t.params.at("group").get<int64_t>();
        s.symmetric = t.params.at("symmetric").get<bool>();
    } catch (const nlohmann::json::exception&) {
        fail_in(where, "a quant tensor needs integer bits and group and a boolean symmetric");
    }
    try {
        validate_quant_scheme(s);
    } catch (const Error& e) {
        throw e.with_file(source).with_tensor(t.name);
    }
    return s;
}

PackedView packed_view(const SparqTensor& t, const std::string& source) {
    if (t.encoding != "quant") fail_in({source, t.name, "encoding"}, "is '", t.encoding, "', expected 'quant'");
    if (t.shape.size() != 2) fail_in({source, t.name, "shape"}, "a quant tensor must have rank 2");
    const QuantScheme scheme = tensor_quant_scheme(t, source);
    const PackedGeometry g = packed_geometry(scheme, t.shape[0], t.shape[1]);
    const SparqPlane& codes = t.plane("codes", source);
    const SparqPlane& scales = t.plane("scales", source);
    auto check = [&](const SparqPlane& p, size_t expected) {
        if (p.size != expected) {
            fail_in({source, t.name, "planes." + p.name + ".size"}, "is ", p.size, " bytes, the scheme ", scheme.name(),
                    " and shape ", shape_string(t.shape), " need ", expected);
        }
    };
    check(codes, g.code_bytes);
    check(scales, g.scale_bytes);
    PackedView v;
    v.scheme = scheme;
    v.rows = t.shape[0];
    v.cols = t.shape[1];
    v.codes = codes.data;
    v.scales = scales.data;
    if (!scheme.symmetric) {
        const SparqPlane& zeros = t.plane("zeros", source);
        check(zeros, g.zero_bytes);
        v.zeros = zeros.data;
    }
    check_packed_contents(v, t.name);
    return v;
}

NmSparseView nm_sparse_view(const SparqTensor& t, const std::string& source) {
    if (t.encoding != "nm_sparse") fail_in({source, t.name, "encoding"}, "is '", t.encoding, "', expected 'nm_sparse'");
    NmSparseView v;
    v.scheme.quant = sparse_value_scheme(t, source);
    try {
        v.scheme.n = t.params.at("n").get<int>();
        v.scheme.m = t.params.at("m").get<int>();
    } catch (const nlohmann::json::exception&) {
        fail_in({source, t.name, "params"}, "an nm_sparse tensor needs integer n and m");
    }
    v.rows = t.shape[0];
    v.cols = t.shape[1];
    NmSparseGeometry g;
    try {
        g = nm_sparse_geometry(v.scheme, v.rows, v.cols);
    } catch (const Error& e) {
        throw Error(e.message(), {source, t.name, "params"});
    }
    const std::string what = "the scheme " + std::to_string(v.scheme.n) + ":" + std::to_string(v.scheme.m) + " " +
                             v.scheme.quant.name();
    const SparqPlane& values = t.plane("values", source);
    const SparqPlane& indices = t.plane("indices", source);
    const SparqPlane& scales = t.plane("scales", source);
    check_plane_size(t, values, g.value_bytes, what, source);
    check_plane_size(t, indices, g.index_bytes, what, source);
    check_plane_size(t, scales, g.scale_bytes, what, source);
    v.values = values.data;
    v.indices = indices.data;
    v.scales = scales.data;
    if (!v.scheme.quant.symmetric) {
        const SparqPlane& zeros = t.plane("zeros", source);
        check_plane_size(t, zeros, g.zero_bytes, what, source);
        v.zeros = zeros.data;
    }
    try {
        check_nm_sparse_contents(v, t.name);
    } catch (const Error& e) {
        throw e.with_file(source);
    }
    return v;
}

BitmaskSparseView bitmask_sparse_view(const SparqTensor& t, const std::string& source) {
    if (t.encoding != "bitmask_sparse") {
        fail_in({source, t.name, "encoding"}, "is '", t.encoding, "', expected 'bitmask_sparse'");
    }
    BitmaskSparseView v;
    v.scheme = sparse_value_scheme(t, source);
    v.rows = t.shape[0];
    v.cols = t.shape[1];
    const PackedGeometry g = packed_geometry(v.scheme, v.rows, v.cols);
    const std::string what = "the scheme " + v.scheme.name();
    const SparqPlane& mask = t.plane("mask", source);
    const SparqPlane& values = t.plane("values", source);
    const SparqPlane& row_offsets = t.plane("row_offsets", source);
    const SparqPlane& scales = t.plane("scales", source);
    check_plane_size(t, mask, static_cast<size_t>(v.rows * v.mask_row_bytes()), what, source);
    check_plane_size(t, row_offsets, static_cast<size_t>(v.rows + 1) * 8, what, source);
    check_plane_size(t, scales, g.scale_bytes, what, source);
    v.mask = mask.data;
    v.values = values.data;
    v.row_offsets = row_offsets.data;
    v.scales = scales.data;
    if (!v.scheme.symmetric) {
        const SparqPlane& zeros = t.plane("zeros", source);
        check_plane_size(t, zeros, g.zero_bytes, what, source);
        v.zeros = zeros.data;
    }
    try {
        check_bitmask_sparse_contents(v, values.size, t.name);
    } catch (const Error& e) {
        throw e.with_file(source);
    }
    return v;
}

size_t bitmask_sparse_bytes(const BitmaskSparseView& v) {
    const PackedGeometry g = packed_geometry(v.scheme, v.rows, v.cols);
    return static_cast<size_t>(v.rows * v.mask_row_bytes()) + static_cast<size_t>(v.row_offset(v.rows)) +
           static_cast<size_t>(v.rows + 1) * 8 + g.scale_bytes + g.zero_bytes;
}

Tensor sparq_tensor_values(const SparqFile& file, const SparqTensor& t) {
    const std::string& path = file.source();
    if (t.encoding == "f32" || t.encoding == "f16" || t.encoding == "bf16") return file.dense_tensor(t);
    if (t.encoding == "quant") return make_f32_tensor(t.shape, dequantize_tensor(packed_view(t, path)));
    if (t.encoding == "nm_sparse") {
        return make_f32_tensor(t.shape, dequantize_tensor(unpack_nm_sparse(nm_sparse_view(t, path))));
    }
    if (t.encoding == "bitmask_sparse") {
        return make_f32_tensor(t.shape, dequantize_tensor(unpack_bitmask_sparse(bitmask_sparse_view(t, path))));
    }
    fail_in({path, t.name, "encoding"}, "encoding '", t.encoding, "' is not supported by this reader");
}

ModelSource load_sparq_model_header(const std::string& path, const SparqFile& file) {
    ModelSource m;
    m.path = path;
    m.format = "sparq";
    const auto& meta = file.metadata();
    if (!meta.contains("config") || !meta["config"].is_object()) {
        fail_in({path, "", "config"}, "the metadata holds no model config");
    }
    m.config = parse_hf_config(meta["config"].dump(), path + " (metadata.config)");
    m.tensors = TensorMap(path);
    const SparqBlob* tok = file.tokenizer();
    if (!tok) fail_in({path, "", "blobs"}, "the file embeds no tokenizer");
    SpecialTokenSettings special;
    if (const auto it = meta.find("tokenizer"); it != meta.end() && it->is_object()) {
        if (it->contains("bos_id") && (*it)["bos_id"].is_number_integer()) special.bos_id = (*it)["bos_id"].get<int32_t>();
        if (it->contains("eos_id") && (*it)["eos_id"].is_number_integer()) special.eos_id = (*it)["eos_id"].get<int32_t>();
        if (it->contains("add_bos") && (*it)["add_bos"].is_boolean()) special.add_bos = (*it)["add_bos"].get<bool>();
    }
    std::string bytes(reinterpret_cast<const char*>(tok->data), tok->size);
    m.tokenizer = tok->kind == "gguf" ? tokenizer_from_gguf_bytes(bytes, m.config.vocab_size, path)
                                      : load_tokenizer_from_bytes(bytes, tok->kind, m.config.vocab_size, path, special);
    return m;
}

ModelSource load_sparq_model(const std::string& path, bool verify) {
    auto file = SparqFile::open(path, verify);
    ModelSource m = load_sparq_model_header(path, *file);
    for (const SparqTensor& t : file->tensors()) {
        m.tensors.add(t.name, sparq_tensor_values(*file, t));
        m.stored_bytes[t.name] = static_cast<int64_t>(t.stored_bytes());
    }
    return m;
}

}  // namespace sparq
