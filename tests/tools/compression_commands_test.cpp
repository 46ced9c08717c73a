// `sparq quantize` and `sparq sparsify` through the CLI: --dry-run with
// --structured plans on the pruned shapes (its byte estimate is what the real
// run then stores), and an option the run would not read is a usage error
// before anything is loaded or written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "run_cli.h"
#include "test_data.h"

namespace sparq::cli {
namespace {

using testing_support::run_cli;

TEST(CompressionCommands, StructuredDryRunPlansThePrunedShapes) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const std::string model = testing::data_path("stories260K/hf");
    const std::string out = testing::temp_dir("sparsify_dry_run") + "/pruned.sparq";
    const std::vector<std::string> flags = {"--structured", "mlp=0.25,heads=0.5", "--bits", "4", "--group", "32",
                                            "--json", "--quiet"};
    std::vector<std::string> dry = {"sparsify", model, "-o", out, "--dry-run"};
    dry.insert(dry.end(), flags.begin(), flags.end());
    std::string printed;
    ASSERT_EQ(run_cli(dry, &printed), 0) << printed;
    EXPECT_FALSE(std::filesystem::exists(out));
    const nlohmann::json plan = nlohmann::json::parse(printed);
    const nlohmann::json& structured = plan["structured"];
    const int64_t intermediate = structured["intermediate_size"][0].get<int64_t>();
    const int64_t kept = structured["intermediate_size"][1].get<int64_t>();
    EXPECT_EQ(kept % 32, 0);
    EXPECT_LT(kept, intermediate);
    EXPECT_LT(structured["num_heads"][1].get<int64_t>(), structured["num_heads"][0].get<int64_t>());
    bool saw_gate = false;
    for (const auto& t : plan["plan"]) {
        if (t["name"] == "model.layers.0.mlp.gate_proj.weight") {
            saw_gate = true;
            EXPECT_EQ(t["shape"][0].get<int64_t>(), kept);
        }
    }
    EXPECT_TRUE(saw_gate);

    std::vector<std::string> real = {"sparsify", model, "-o", out};
    real.insert(real.end(), flags.begin(), flags.end());
    ASSERT_EQ(run_cli(real, &printed), 0) << printed;
    const nlohmann::json done = nlohmann::json::parse(printed);
    EXPECT_EQ(plan["estimated_weight_bytes"].get<int64_t>(), done["weight_bytes"].get<int64_t>());
}

TEST(CompressionCommands, OptionsTheRunWouldNotReadAreRefused) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const std::string model = testing::data_path("stories260K/hf");
    const std::string out = testing::temp_dir("unread_options") + "/q.sparq";
    EXPECT_EQ(run_cli({"quantize", model, "-o", out, "--bits", "4", "--method", "rtn", "--damp", "0.1", "--quiet"}), 1);
    EXPECT_EQ(run_cli({"quantize", model, "-o", out, "--bits", "4", "--seed", "3", "--quiet"}), 1);
    EXPECT_EQ(run_cli({"sparsify", model, "-o", out, "--sparsity", "0.5", "--owl-m", "7", "--quiet"}), 1);
    EXPECT_EQ(run_cli({"sparsify", model, "-o", out, "--sparsity", "0.5", "--block-size", "64", "--quiet"}), 1);
    EXPECT_FALSE(std::filesystem::exists(out));
    // The same options where they are read: accepted (planned only).
    EXPECT_EQ(run_cli({"sparsify", model, "-o", out, "--pattern", "2:4", "--method", "sparsegpt", "--block-size", "64",
                       "--calib", testing::data_path("text/tinystories-calibration-selfgen.txt"), "--dry-run",
                       "--quiet"}),
              0);
}

// --correct-upstream end to end: the report and the file say it ran and how
// many linears it corrected; a run without the sequential runner refuses it.
TEST(CompressionCommands, UpstreamCorrectionIsReportedAndRecorded) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-calibration-selfgen.txt");
    const std::string model = testing::data_path("stories260K/hf");
    const std::string calib = testing::data_path("text/tinystories-calibration-selfgen.txt");
    const std::string out = testing::temp_dir("correct_upstream") + "/s.sparq";
    std::string printed;
    ASSERT_EQ(run_cli({"sparsify", model, "-o", out, "--pattern", "2:4", "--method", "sparsegpt", "--calib", calib,
                       "--calib-samples", "8", "--calib-len", "32", "--correct-upstream", "--json", "--quiet"},
                      &printed),
              0)
        << printed;
    const nlohmann::json report = nlohmann::json::parse(printed);
    EXPECT_EQ(report["calibration"]["correct_upstream"], true);
    EXPECT_EQ(report["calibration"]["corrected_linears"], 5 * 7 - 3);  // all but block 0's q/k/v
    ASSERT_EQ(run_cli({"inspect", out, "--json"}, &printed), 0);
    const nlohmann::json recorded = nlohmann::json::parse(printed)["metadata"]["sparsity"]["calibration"];
    EXPECT_EQ(recorded["correct_upstream"], true);
    EXPECT_EQ(recorded["corrected_linears"], 5 * 7 - 3);
    EXPECT_EQ(run_cli({"quantize", model, "-o", out + ".q", "--bits", "4", "--method", "imatrix", "--calib", calib,
                       "--correct-upstream", "--quiet"}),
              1);
    EXPECT_FALSE(std::filesystem::exists(out + ".q"));
}

// --calib-samples all: every window of the text, no warning, the count in
// the report; anything but a positive count or `all` is a usage error.
TEST(CompressionCommands, CalibrationOnTheWholeText) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-calibration-selfgen.txt");
    const std::string model = testing::data_path("stories260K/hf");
    const std::string dir = testing::temp_dir("calib_all");
    std::ifstream in(testing::data_path("text/tinystories-calibration-selfgen.txt"), std::ios::binary);
    std::string text(6000, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    std::ofstream(dir + "/c.txt", std::ios::binary) << text;
    std::string printed;
    ASSERT_EQ(run_cli({"quantize", model, "-o", dir + "/q.sparq", "--bits", "4", "--method", "imatrix", "--calib",
                       dir + "/c.txt", "--calib-samples", "all", "--calib-len", "64", "--json", "--quiet"},
                      &printed),
              0)
        << printed;
    const nlohmann::json calibration = nlohmann::json::parse(printed)["calibration"];
    EXPECT_GT(calibration["samples"].get<int64_t>(), 8);
    EXPECT_EQ(calibration["tokens"], calibration["samples"].get<int64_t>() * 64);
    EXPECT_TRUE(calibration["warnings"].empty()) << calibration["warnings"];
    for (const char* bad : {"0", "some"}) {
        EXPECT_EQ(run_cli({"quantize", model, "-o", dir + "/bad.sparq", "--bits", "4", "--method", "imatrix", "--calib",
                           dir + "/c.txt", "--calib-samples", bad, "--quiet"}),
                  2)
            << bad;
    }
    EXPECT_FALSE(std::filesystem::exists(dir + "/bad.sparq"));
}

}  // namespace
}  // namespace sparq::cli
