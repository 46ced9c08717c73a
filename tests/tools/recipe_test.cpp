// Recipes (tools/recipe.h): parsing with unknown keys refused, --set
// overrides, ${...} substitution, each stage's command line; and a real
// recipe on stories260K run through `sparq run` in process (quantize, eval
// of both models, check), including a failing gate's exit code.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "test_data.h"
#include "tools/command.h"
#include "tools/recipe.h"
#include "run_cli.h"

namespace sparq::cli {
namespace {

const char* kRecipe = R"(
model: /models/m
stages:
  - name: q
    command: quantize
    options: {bits: 4, group: 128, calib_len: 256, no_act_order: true, asym: false}
  - name: ev
    command: eval
    options: {text: '${DATA}/t.txt', ref: '${model}'}
  - name: gate
    command: check
    options: {report: '${report:ev}', baseline: base.json, max_kld: 0.1}
)";

std::optional<std::string> fake_env(const std::string& name) {
    if (name == "DATA") return "/data";
    return std::nullopt;
}

std::string error_field(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.context().field;
    }
    return "accepted";
}

TEST(Recipe, StagesBecomeTheCommandLinesOfTheirCommands) {
    Recipe r = parse_recipe(kRecipe, "dir/my-recipe.yaml");
    EXPECT_EQ(r.output_dir, "my-recipe.out");
    resolve_recipe(r, fake_env);
    const std::vector<std::string> q = stage_arguments(r, 0, {"--threads", "2"});
    const std::vector<std::string> expected_q = {"quantize", "/models/m", "-o", "my-recipe.out/q.sparq", "--bits", "4",
                                                 "--group", "128", "--calib-len", "256", "--no-act-order", "--json",
                                                 "--threads", "2"};
    EXPECT_EQ(q, expected_q);
    // eval reads the latest compressed model; check reads reports.
    const std::vector<std::string> expected_ev = {"eval", "my-recipe.out/q.sparq", "--text", "/data/t.txt", "--ref",
                                                  "/models/m", "--json"};
    EXPECT_EQ(stage_arguments(r, 1, {}), expected_ev);
    const std::vector<std::string> expected_gate = {"check", "--report", "my-recipe.out/ev.json", "--baseline",
                                                    "base.json", "--max-kld", "0.1", "--json"};
    EXPECT_EQ(stage_arguments(r, 2, {}), expected_gate);
}

TEST(Recipe, OverridesReplaceAddAndRefuse) {
    Recipe r = parse_recipe(kRecipe, "r.yaml");
    apply_override(r, "q.bits=3");
    apply_override(r, "q.calib=c.txt");
    apply_override(r, "ev.input=other.sparq");
    apply_override(r, "model=/models/n");
    resolve_recipe(r, fake_env);
    EXPECT_EQ(r.stages[0].options[0], (std::pair<std::string, std::string>{"bits", "3"}));
    EXPECT_EQ(r.stages[0].options.back(), (std::pair<std::string, std::string>{"calib", "c.txt"}));
    EXPECT_EQ(stage_input(r, 1), "other.sparq");
    EXPECT_EQ(stage_input(r, 0), "/models/n");
    EXPECT_EQ(error_field([&] { apply_override(r, "nostage.bits=3"); }), "--set");
    EXPECT_EQ(error_field([&] { apply_override(r, "bits"); }), "--set");
    EXPECT_EQ(error_field([&] { apply_override(r, "ev.output=x"); }), "--set");  // eval writes no file
}

TEST(Recipe, MalformedRecipesNameTheField) {
    EXPECT_EQ(error_field([] { parse_recipe("model: m\nstages: []\n", "r.yaml"); }), "stages");
    EXPECT_EQ(error_field([] { parse_recipe("stages: [{command: eval}]\n", "r.yaml"); }), "model");
    EXPECT_EQ(error_field([] { parse_recipe("model: m\nstage: []\n", "r.yaml"); }), "stage");
    EXPECT_EQ(error_field([] { parse_recipe("model: m\nstages: [{command: train}]\n", "r.yaml"); }),
              "stages[0].command");
    EXPECT_EQ(error_field([] { parse_recipe("model: m\nstages: [{command: eval, opts: {}}]\n", "r.yaml"); }),
              "stages[0].opts");
    EXPECT_EQ(error_field([] { parse_recipe("model: m\nstages: [{command: eval}, {command: eval}]\n", "r.yaml"); }),
              "stages[1].name");
    EXPECT_EQ(error_field([] { parse_recipe("model: m\nstages: [{command: eval, output: x}]\n", "r.yaml"); }),
              "stages[0].output");
    EXPECT_EQ(error_field([] { parse_recipe("model: m\nstages: [{command: quantize, options: {o: x}}]\n", "r.yaml"); }),
              "stages[0].options.o");
    EXPECT_EQ(error_field([] { parse_recipe("model: m\nstages: [{command: eval, options: {text: [a, b]}}]\n", "r.yaml"); }),
              "stages[0].options.text");
    EXPECT_EQ(error_field([] { parse_recipe("model: [\n", "r.yaml"); }), "");  // not YAML
    Recipe r = parse_recipe("model: ${NOPE}/m\nstages: [{command: eval}]\n", "r.yaml");
    EXPECT_EQ(error_field([&] { resolve_recipe(r, fake_env); }), "model");
    Recipe s = parse_recipe("model: m\nstages: [{command: eval, options: {text: '${output:eval}'}}]\n", "r.yaml");
    EXPECT_EQ(error_field([&] { resolve_recipe(s, fake_env); }), "eval.options.text");  // eval writes no file
    // A stage may read only what earlier stages wrote (a later one's file would be stale).
    Recipe ahead = parse_recipe(
        "model: m\nstages: [{name: gate, command: check, options: {report: '${report:ev}'}}, {name: ev, command: eval}]\n",
        "r.yaml");
    EXPECT_EQ(error_field([&] { resolve_recipe(ahead, fake_env); }), "gate.options.report");
    Recipe own = parse_recipe("model: m\nstages: [{name: q, command: quantize, input: '${output:q}'}]\n", "r.yaml");
    EXPECT_EQ(error_field([&] { resolve_recipe(own, fake_env); }), "q.input");
}

// Mutated recipes either parse and resolve or throw sparq::Error: never a
// crash or another exception (yaml-cpp's own are turned into errors).
TEST(Recipe, MutatedRecipesAreErrorsOrRecipes) {
    const std::string base = kRecipe;
    const std::string alphabet = "{}[]:,-'\"$#&*!|>%@` \n\tab01";
    std::mt19937 gen(5);
    int parsed = 0, refused = 0;
    for (int trial = 0; trial < 4000; ++trial) {
        std::string text = base;
        const int edits = 1 + static_cast<int>(gen() % 4);
        for (int e = 0; e < edits; ++e) {
            const size_t at = gen() % text.size();
            const std::string c(1, alphabet[gen() % alphabet.size()]);
            switch (gen() % 3) {
                case 0: text = text.substr(0, at) + c + text.substr(at + 1); break;
                case 1: text = text.substr(0, at) + text.substr(std::min(text.size(), at + 1 + gen() % 8)); break;
                default: text = text.substr(0, at) + c + text.substr(at); break;
            }
            if (text.empty()) text.push_back('x');
        }
        try {
            Recipe r = parse_recipe(text, "m.yaml");
            resolve_recipe(r, fake_env);
            for (size_t i = 0; i < r.stages.size(); ++i) stage_arguments(r, i, {});
            ++parsed;
        } catch (const Error&) {
            ++refused;
        }
    }
    EXPECT_GT(parsed, 100);
    EXPECT_GT(refused, 100);
}

using testing_support::run_cli;

TEST(Recipe, RunsARealRecipeAndStopsAtAFailedGate) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-valid-snippet.txt");
    const std::string dir = testing::temp_dir("recipe_run");
    const std::string recipe = dir + "/int8.yaml";
    std::ofstream(recipe) << "model: " << testing::data_path("stories260K/hf") << "\n"
                          << "output_dir: " << dir << "/out\n"
                          << "stages:\n"
                          << "  - {name: quantize, command: quantize, options: {bits: 8}}\n"
                          << "  - {name: base, command: eval, input: '${model}', options: {text: "
                          << testing::data_path("text/tinystories-valid-snippet.txt") << ", ctx: 64, chunks: 4}}\n"
                          << "  - {name: eval, command: eval, options: {text: "
                          << testing::data_path("text/tinystories-valid-snippet.txt")
                          << ", ctx: 64, chunks: 4, ref: '${model}'}}\n"
                          << "  - {name: gate, command: check, options: {report: '${report:eval}', baseline: "
                             "'${report:base}', max_ppl_increase_pct: 1}}\n";
    std::string out;
    ASSERT_EQ(run_cli({"run", recipe, "--json", "--quiet"}, &out), 0) << out;
    const nlohmann::json j = nlohmann::json::parse(out);
    EXPECT_TRUE(j["ok"].get<bool>());
    ASSERT_EQ(j["stages"].size(), 4u);
    EXPECT_TRUE(std::filesystem::exists(dir + "/out/quantize.sparq"));
    EXPECT_TRUE(std::filesystem::exists(dir + "/out/eval.json"));
    const double ppl = j["metrics"]["ppl"].get<double>();
    EXPECT_GT(ppl, 1.0);
    EXPECT_EQ(j["stages"][2]["metrics"]["model"].get<std::string>(), dir + "/out/quantize.sparq");
    EXPECT_EQ(j["outputs"]["quantize"].get<std::string>(), dir + "/out/quantize.sparq");
    // The file records the stage's own command line (sparq inspect shows it).
    std::string inspected;
    ASSERT_EQ(run_cli({"inspect", dir + "/out/quantize.sparq", "--json"}, &inspected), 0);
    EXPECT_EQ(nlohmann::json::parse(inspected)["metadata"]["command"].get<std::string>(),
              j["stages"][0]["arguments"].get<std::string>());

    // int2 fails a 1% gate: exit 3, the failed stage named, the earlier ones kept.
    ASSERT_EQ(run_cli({"run", recipe, "--set", "quantize.bits=2", "--json", "--quiet"}, &out), 3) << out;
    const nlohmann::json failed = nlohmann::json::parse(out);
    EXPECT_FALSE(failed["ok"].get<bool>());
    EXPECT_EQ(failed["failed_stage"].get<std::string>(), "gate");
    EXPECT_GT(failed["metrics"]["ppl"].get<double>(), ppl);

    // A misspelt option is refused before any stage runs.
    std::filesystem::remove_all(dir + "/out");
    EXPECT_EQ(run_cli({"run", recipe, "--set", "quantize.bitz=4", "--quiet"}), 1);
    EXPECT_FALSE(std::filesystem::exists(dir + "/out/quantize.sparq"));
    // --dry-run plans and writes nothing.
    ASSERT_EQ(run_cli({"run", recipe, "--dry-run", "--json", "--quiet"}, &out), 0);
    EXPECT_TRUE(nlohmann::json::parse(out)["stages"][0]["plan"].is_object());
    EXPECT_FALSE(std::filesystem::exists(dir + "/out/quantize.sparq"));
}

// The recipes shipped in recipes/ stay valid as commands change: each one
// parses, every option is one its command takes, and --dry-run writes nothing.
TEST(Recipe, ShippedRecipesAreValid) {
    SPARQ_REQUIRE_DATA("small-llama-v2/hf/config.json");
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const std::filesystem::path recipes = std::filesystem::path(SPARQ_SOURCE_DIR) / "recipes";
    int checked = 0;
    for (const auto& entry : std::filesystem::directory_iterator(recipes)) {
        if (entry.path().extension() != ".yaml") continue;
        const std::string out_dir = testing::temp_dir("shipped_recipe_" + entry.path().stem().string());
        std::string out;
        EXPECT_EQ(run_cli({"run", entry.path().string(), "--set", "output_dir=" + out_dir, "--dry-run", "--json", "--quiet"},
                          &out),
                  0)
            << entry.path();
        EXPECT_TRUE(std::filesystem::is_empty(out_dir)) << entry.path();
        ++checked;
    }
    EXPECT_GE(checked, 3);
}

}  // namespace
}  // namespace sparq::cli
