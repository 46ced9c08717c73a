#include "models/sparq_model.h"

#include "core/error.h"
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

}  // namespace

uint64_t stored_entry_bytes(const ModelTensorEntry& e) {
    if (!e.packed) return round_up_64(e.dense.nbytes);
    const PackedGeometry g = packed_geometry(e.packed->scheme, e.packed->rows, e.packed->cols);
    return round_up_64(g.code_bytes) + round_up_64(g.scale_bytes) + round_up_64(g.zero_bytes);
}

void write_sparq_model(const std::string& path, const ModelConfig& config, const Tokenizer& tokenizer,
                       const std::vector<ModelTensorEntry>& tensors, nlohmann::json metadata) {
    SparqWriter writer(path);
    if (!metadata.is_object()) metadata = nlohmann::json::object();
    metadata["config"] = nlohmann::json::parse(config_to_json(config));
    metadata["arch"] = arch_short_name(config);
    metadata["created_by"] = {{"tool", "sparq"}, {"version", "0.1.0"}};
    const Vocabulary& vocab = tokenizer.vocabulary();
    metadata["tokenizer"] = {{"kind", tokenizer.source_kind()}, {"bos_id", vocab.bos_id}, {"eos_id", vocab.eos_id},
                             {"add_bos", vocab.add_bos}};
    writer.set_metadata(metadata);
    const std::string& tok = tokenizer.source_bytes();
    writer.set_tokenizer(tokenizer.source_kind(), bytes_of(tok.data(), tok.size()));
    for (const auto& e : tensors) {
        if (!e.packed) {
            writer.add_dense(e.name, e.dense);
            continue;
        }
        const PackedTensor& p = *e.packed;
        StoredTensor st;
        st.name = e.name;
        st.encoding = "quant";
        st.shape = {p.rows, p.cols};
        st.params = {{"bits", p.scheme.bits}, {"group", p.scheme.group}, {"symmetric", p.scheme.symmetric}};
        st.planes.push_back({"codes", bytes_of(p.codes.data(), p.codes.size())});
        st.planes.push_back({"scales", bytes_of(p.scales.data(), p.scales.size() * sizeof(uint16_t))});
        if (!p.scheme.symmetric) st.planes.push_back({"zeros", bytes_of(p.zeros.data(), p.zeros.size())});
        writer.add_tensor(st);
    }
    writer.commit();
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
    m.tokenizer = load_tokenizer_from_bytes(std::string(reinterpret_cast<const char*>(tok->data), tok->size), tok->kind,
                                            m.config.vocab_size, path, special);
    return m;
}

ModelSource load_sparq_model(const std::string& path, bool verify) {
    auto file = SparqFile::open(path, verify);
    ModelSource m = load_sparq_model_header(path, *file);
    for (const SparqTensor& t : file->tensors()) {
        if (t.encoding == "f32" || t.encoding == "f16" || t.encoding == "bf16") {
            m.tensors.add(t.name, file->dense_tensor(t));
        } else if (t.encoding == "quant") {
            const PackedView view = packed_view(t, path);
            m.tensors.add(t.name, make_f32_tensor(t.shape, dequantize_tensor(view)));
        } else {
            fail_in({path, t.name, "encoding"}, "encoding '", t.encoding, "' is not supported by this reader");
        }
    }
    return m;
}

}  // namespace sparq
