// A GGUF file as a MODEL argument through the CLI: what `sparq export`
// writes, `sparq inspect` and `sparq eval` read back as the model it came
// from (same bytes per tensor type, same perplexity to the last digit).
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "run_cli.h"
#include "test_data.h"

namespace sparq::cli {
namespace {

using testing_support::run_cli;

// `sparq eval MODEL --json` on the stories snippet (ctx 64, 8 chunks) with
// `extra` flags: its result (an empty object, and a failure, when it fails).
nlohmann::json eval_snippet(const std::string& model, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"eval",     model, "--text", testing::data_path("text/tinystories-valid-snippet.txt"),
                                     "--ctx",    "64",  "--chunks", "8", "--json", "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string out;
    EXPECT_EQ(run_cli(args, &out), 0) << "eval " << model;
    return out.empty() ? nlohmann::json::object() : nlohmann::json::parse(out);
}

TEST(GgufCommands, ExportedFileInspectsAndEvaluatesAsItsSource) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-valid-snippet.txt");
    const std::string model = testing::data_path("stories260K/hf");
    const std::string gguf = testing::temp_dir("gguf_commands") + "/m.gguf";
    ASSERT_EQ(run_cli({"export", model, "-o", gguf, "--type", "f16", "--quiet"}), 0);
    std::string out;
    ASSERT_EQ(run_cli({"inspect", gguf, "--json"}, &out), 0) << out;
    const nlohmann::json inspected = nlohmann::json::parse(out);
    EXPECT_EQ(inspected["n_layers"], 5);
    bool saw_q = false;
    for (const auto& t : inspected["tensors"]) {
        if (t["name"] == "model.layers.0.self_attn.q_proj.weight") {
            saw_q = true;
            EXPECT_EQ(t["dtype"], "F16");
            EXPECT_EQ(t["bytes"], 64 * 64 * 2);
        }
    }
    EXPECT_TRUE(saw_q);
    const nlohmann::json ja = eval_snippet(model), jb = eval_snippet(gguf, {"--ref", model});
    ASSERT_TRUE(ja.contains("ppl") && jb.contains("ppl"));
    EXPECT_EQ(ja["text_tokens"], jb["text_tokens"]);
    // F16 storage of an F32 model: close, not equal.
    EXPECT_NEAR(ja["ppl"].get<double>(), jb["ppl"].get<double>(), 1e-3 * ja["ppl"].get<double>());
    EXPECT_LT(jb["kld_mean"].get<double>(), 1e-4);
}

// A .sparq file exported with --type q4_0 evaluates exactly as the .sparq
// file does on the reference path: the codes were carried over as they are.
TEST(GgufCommands, Q4_0ExportOfASparqFileKeepsItsValues) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-valid-snippet.txt");
    const std::string dir = testing::temp_dir("gguf_commands_q4");
    ASSERT_EQ(run_cli({"quantize", testing::data_path("stories260K/hf"), "-o", dir + "/m.sparq", "--bits", "4", "--group",
                       "32", "--quiet"}),
              0);
    std::string out;
    ASSERT_EQ(run_cli({"export", dir + "/m.sparq", "-o", dir + "/m.gguf", "--type", "q4_0", "--json", "--quiet"}, &out), 0)
        << out;
    const nlohmann::json exported = nlohmann::json::parse(out);
    EXPECT_EQ(exported["exact"].size(), 31u);  // all but the five 172-column down_proj
    EXPECT_EQ(exported["kept_f32"].size(), 5u);
    const nlohmann::json a = eval_snippet(dir + "/m.sparq", {"--reference-path"}), b = eval_snippet(dir + "/m.gguf");
    ASSERT_TRUE(a.contains("ppl") && b.contains("ppl"));
    EXPECT_EQ(a["ppl"].get<double>(), b["ppl"].get<double>());
}

// Asymmetric int4 codes travel as Q4_1 blocks under any quantized type (the
// offsets rounded to FP16 only), and float weights take calibration
// importance when the type's quantizer reads it.
TEST(GgufCommands, AsymmetricCodesAndCalibratedBlocks) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-valid-snippet.txt");
    const std::string model = testing::data_path("stories260K/hf");
    const std::string text = testing::data_path("text/tinystories-valid-snippet.txt");
    const std::string dir = testing::temp_dir("gguf_commands_q4_1");
    ASSERT_EQ(run_cli({"quantize", model, "-o", dir + "/m.sparq", "--bits", "4", "--group", "32", "--asym", "--quiet"}), 0);
    std::string out;
    ASSERT_EQ(run_cli({"export", dir + "/m.sparq", "-o", dir + "/m.gguf", "--type", "q4_k", "--json", "--quiet"}, &out), 0)
        << out;
    const nlohmann::json exported = nlohmann::json::parse(out);
    EXPECT_EQ(exported["exact"].size(), 31u);  // all but down_proj (172 columns, kept F32)
    EXPECT_EQ(exported["block_types"]["Q4_1"], 30);
    EXPECT_EQ(exported["block_types"]["Q8_0"], 1);  // the int8 embedding
    const nlohmann::json a = eval_snippet(dir + "/m.sparq", {"--reference-path"}), b = eval_snippet(dir + "/m.gguf");
    ASSERT_TRUE(a.contains("ppl") && b.contains("ppl"));
    const double ppl_sparq = a["ppl"].get<double>();
    EXPECT_NEAR(b["ppl"].get<double>(), ppl_sparq, 1e-3 * ppl_sparq);

    ASSERT_EQ(run_cli({"export", model, "-o", dir + "/c.gguf", "--type", "q4_1", "--calib", text, "--calib-samples", "8",
                       "--calib-len", "64", "--json", "--quiet"},
                      &out),
              0)
        << out;
    const nlohmann::json calibrated = nlohmann::json::parse(out);
    EXPECT_EQ(calibrated["calibration"]["tokens"], 8 * 64);
    EXPECT_EQ(calibrated["requantized"].size(), 31u);
    // Round-to-nearest types do not read calibration: refused before any work.
    EXPECT_EQ(run_cli({"export", model, "-o", dir + "/x.gguf", "--type", "q4_0", "--calib", text, "--quiet"}), 1);
    EXPECT_EQ(run_cli({"export", model, "-o", dir + "/x.gguf", "--type", "f16", "--calib", text, "--quiet"}), 1);
    EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
}

// A quantized GGUF source is measured by what its file holds, not by the F32
// it is dequantized to.
TEST(GgufCommands, SourceBytesOfAQuantizedGgufAreItsBlocks) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const std::string dir = testing::temp_dir("gguf_commands_source_bytes");
    ASSERT_EQ(run_cli({"export", testing::data_path("stories260K/hf"), "-o", dir + "/m.gguf", "--type", "q8_0", "--quiet"}), 0);
    std::string out;
    ASSERT_EQ(run_cli({"inspect", dir + "/m.gguf", "--json"}, &out), 0);
    int64_t file_bytes = 0, f32_bytes = 0;
    const nlohmann::json inspected = nlohmann::json::parse(out);
    for (const auto& t : inspected["tensors"]) {
        file_bytes += t["bytes"].get<int64_t>();
        int64_t n = 1;
        for (const auto& d : t["shape"]) n *= d.get<int64_t>();
        f32_bytes += 4 * n;
    }
    ASSERT_EQ(run_cli({"quantize", dir + "/m.gguf", "-o", dir + "/m.sparq", "--bits", "4", "--json", "--quiet"}, &out), 0);
    const int64_t source = nlohmann::json::parse(out)["source_weight_bytes"].get<int64_t>();
    EXPECT_EQ(source, file_bytes);
    EXPECT_LT(source, f32_bytes / 2);  // Q8_0 blocks (down_proj and norms F32), not all dequantized F32
}

// GPTQ onto the block grids: the block linears come from GPTQ, the result is
// closer to the model than the fitted blocks from the same calibration, and
// GPTQ's options need GPTQ and calibration.
TEST(GgufCommands, GptqOntoBlockGrids) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-valid-snippet.txt");
    const std::string model = testing::data_path("stories260K/hf");
    const std::string text = testing::data_path("text/tinystories-valid-snippet.txt");
    const std::string dir = testing::temp_dir("gguf_commands_gptq");
    const std::vector<std::string> calib = {"--calib", text, "--calib-samples", "16", "--calib-len", "64"};
    auto export_with = [&](const std::string& out, const std::vector<std::string>& extra) {
        std::vector<std::string> args = {"export", model, "-o", dir + "/" + out, "--type", "q4_k", "--json", "--quiet"};
        args.insert(args.end(), extra.begin(), extra.end());
        std::string json;
        EXPECT_EQ(run_cli(args, &json), 0) << json;
        return json.empty() ? nlohmann::json() : nlohmann::json::parse(json);
    };
    std::vector<std::string> gptq_args = calib;
    gptq_args.insert(gptq_args.end(), {"--method", "gptq"});
    const nlohmann::json gptq = export_with("g.gguf", gptq_args);
    EXPECT_EQ(gptq["gptq"].size(), 30u);  // q/k/v/o/gate/up of 5 blocks (64 columns: Q4_1); down_proj stays F32
    EXPECT_TRUE(gptq["gptq_fallbacks"].empty());
    export_with("f.gguf", calib);
    const nlohmann::json g = eval_snippet(dir + "/g.gguf", {"--ref", model}), f = eval_snippet(dir + "/f.gguf", {"--ref", model});
    ASSERT_TRUE(g.contains("kld_mean") && f.contains("kld_mean"));
    EXPECT_LT(g["kld_mean"].get<double>(), f["kld_mean"].get<double>());

    EXPECT_EQ(run_cli({"export", model, "-o", dir + "/x.gguf", "--type", "q4_k", "--method", "gptq", "--quiet"}), 1);
    EXPECT_EQ(run_cli({"export", model, "-o", dir + "/x.gguf", "--type", "q4_k", "--damp", "0.1", "--quiet"}), 1);
    EXPECT_EQ(run_cli({"export", model, "-o", dir + "/x.gguf", "--type", "q4_k", "--calib-len", "64", "--quiet"}), 1);
    EXPECT_EQ(run_cli({"export", model, "-o", dir + "/x.gguf", "--type", "f16", "--head-type", "q8_0", "--quiet"}), 1);
    EXPECT_EQ(run_cli({"export", model, "-o", dir + "/x.gguf", "--type", "q4_k", "--head-type", "q5_k", "--quiet"}), 2);
    // stories260K ties its head to the embedding: only --embed-type applies.
    EXPECT_EQ(run_cli({"export", model, "-o", dir + "/x.gguf", "--type", "q4_k", "--head-type", "q8_0", "--quiet"}), 1);
    EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
    std::string embed_out;
    ASSERT_EQ(run_cli({"export", model, "-o", dir + "/e.gguf", "--type", "q4_k", "--embed-type", "f16", "--json", "--quiet"},
                      &embed_out),
              0);
    EXPECT_EQ(nlohmann::json::parse(embed_out)["block_types"]["F16"], 1);
    EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
}

}  // namespace
}  // namespace sparq::cli
