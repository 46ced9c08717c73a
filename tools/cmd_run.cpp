// sparq run RECIPE.yaml [--set KEY=VALUE ...] [--dry-run] [--json]: the
// stages of a recipe (tools/recipe.h), each run in this process through the
// same CLI11 command a user would type, its JSON result captured and kept
// as <output_dir>/<stage>.json. Stops at the first stage that fails, with
// that stage's exit code (1 error, 3 a check or verify that failed).
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "tools/command.h"
#include "tools/recipe.h"

namespace sparq::cli {

namespace {

struct RunArgs {
    CommonOptions common;
    std::string recipe;
    std::vector<std::string> sets;
    bool dry_run = false;
};

std::string joined(const std::vector<std::string>& args) {
    std::string line = "sparq";
    for (const std::string& a : args) line += " " + (a.find(' ') == std::string::npos ? a : "'" + a + "'");
    return line;
}

// Every option a stage names must exist on its command, checked before
// anything runs (a typo in the last stage should not cost the first one).
void check_option_names(const Recipe& recipe) {
    CLI::App app;
    register_commands(app);
    for (const RecipeStage& s : recipe.stages) {
        const CLI::App* command = app.get_subcommand(s.command);
        for (const auto& [key, value] : s.options) {
            const std::string flag = option_flag(key);
            if (command->get_option_no_throw(flag) == nullptr) {
                fail_in({recipe.file, "", s.name + ".options." + key}, "sparq ", s.command, " has no option ", flag);
            }
        }
    }
}

nlohmann::json parse_result(const std::string& captured) {
    if (captured.empty()) return nullptr;
    try {
        return nlohmann::json::parse(captured);
    } catch (const nlohmann::json::exception&) {
        return captured;  // not JSON (should not happen with --json): kept as text
    }
}

int run_recipe(const RunArgs& args) {
    Recipe recipe = read_recipe(args.recipe);
    for (const std::string& s : args.sets) apply_override(recipe, s);
    resolve_recipe(recipe, [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        return v ? std::optional<std::string>(v) : std::nullopt;
    });
    check_option_names(recipe);
    std::vector<std::string> extra;
    if (args.common.threads > 0) extra = {"--threads", std::to_string(args.common.threads)};
    if (args.common.quiet) extra.push_back("--quiet");
    const size_t n = recipe.stages.size();

    nlohmann::json stages = nlohmann::json::array();
    if (args.dry_run) {
        // The stages' command lines, and the plans of those that have one.
        for (size_t i = 0; i < n; ++i) {
            const RecipeStage& s = recipe.stages[i];
            std::vector<std::string> line = stage_arguments(recipe, i, extra);
            nlohmann::json stage = {{"name", s.name}, {"command", s.command}, {"arguments", joined(line)}};
            // A stage reading an earlier stage's output has no plan until that runs.
            if ((s.command == "quantize" || s.command == "sparsify") && std::filesystem::exists(stage_input(recipe, i))) {
                line.push_back("--dry-run");
                std::string captured;
                const int code = run_in_process(line, captured, false);
                if (code != 0) fail_in({recipe.file, "", s.name}, "the stage's plan failed (exit ", code, ")");
                stage["plan"] = parse_result(captured);
            }
            stages.push_back(stage);
        }
        const nlohmann::json j = {{"dry_run", true}, {"recipe", recipe.file}, {"stages", stages}};
        if (args.common.json) {
            print_json(j);
        } else {
            for (const auto& s : stages) {
                std::cout << s["name"].get<std::string>() << ": " << s["arguments"].get<std::string>() << "\n";
                const nlohmann::json& plan = s.contains("plan") ? s["plan"] : nlohmann::json();
                if (plan.is_object() && plan.contains("plan") && plan.contains("estimated_weight_bytes")) {
                    const nlohmann::json& tensors = plan["plan"].is_object() && plan["plan"].contains("tensors")
                                                        ? plan["plan"]["tensors"]
                                                        : plan["plan"];
                    std::cout << "  plan: " << tensors.size() << " tensors, " << plan["estimated_weight_bytes"]
                              << " bytes of weights estimated (--json for each tensor)\n";
                }
            }
        }
        return 0;
    }

    std::filesystem::create_directories(recipe.output_dir);
    nlohmann::json outputs = nlohmann::json::object(), metrics = nlohmann::json::object();
    std::string failed;
    int code = 0;
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < n && code == 0; ++i) {
        const RecipeStage& s = recipe.stages[i];
        const std::vector<std::string> line = stage_arguments(recipe, i, extra);
        log_line(args.common, "[stage " + std::to_string(i + 1) + "/" + std::to_string(n) + " " + s.name + "] " +
                                  joined(line));
        const auto t0 = std::chrono::steady_clock::now();
        std::string captured;
        code = run_in_process(line, captured, false);
        if (code == 2) code = 1;  // a usage error in a stage: the recipe is the input at fault
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const nlohmann::json result = parse_result(captured);
        if (!result.is_null()) write_file_atomic(stage_report(recipe, s), result.dump(1) + "\n");
        stages.push_back({{"name", s.name},
                          {"command", s.command},
                          {"arguments", joined(line)},
                          {"seconds", seconds},
                          {"exit_code", code},
                          {"metrics", result}});
        char done[160];
        std::snprintf(done, sizeof done, "[stage %zu/%zu %s] %s in %.1f s", i + 1, n, s.name.c_str(),
                      code == 0 ? "done" : ("failed (exit " + std::to_string(code) + ")").c_str(), seconds);
        log_line(args.common, done);
        if (code != 0) {
            failed = s.name;
            break;
        }
        if (command_writes_output(s.command)) outputs[s.name] = stage_output(recipe, s);
        if (s.command == "eval" && result.is_object()) metrics = result;
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json j = {{"recipe", recipe.file},       {"model", recipe.model},
                        {"output_dir", recipe.output_dir}, {"ok", code == 0},
                        {"seconds", total},            {"stages", stages},
                        {"outputs", outputs},          {"metrics", metrics}};
    if (!failed.empty()) j["failed_stage"] = failed;
    if (args.common.json) {
        print_json(j);
    } else {
        for (const auto& s : stages) {
            std::cout << std::left << std::setw(20) << s["name"].get<std::string>() << std::setw(10)
                      << s["command"].get<std::string>() << std::fixed << std::setprecision(1) << std::setw(10)
                      << s["seconds"].get<double>() << (s["exit_code"].get<int>() == 0 ? "ok" : "FAILED") << "\n";
        }
        if (metrics.contains("ppl")) std::cout << "ppl " << metrics["ppl"] << "\n";
    }
    if (code != 0) std::cerr << "sparq: error: " << recipe.file << ": stage '" << failed << "' failed (exit " << code << ")\n";
    return code;
}

}  // namespace

void register_run(CLI::App& app) {
    // Owned by the command's callback: each app registered gets its own.
    auto shared = std::make_shared<RunArgs>();
    RunArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand("run", "Run a multi-stage YAML recipe (docs/recipes.md)");
    cmd->add_option("RECIPE", args.recipe, "Recipe file (YAML)")->required();
    cmd->add_option("--set", args.sets, "Override KEY=VALUE: model, output_dir, STAGE.input, STAGE.output, STAGE.OPTION")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd->add_flag("--dry-run", args.dry_run, "Print each stage's command line and plan; write nothing");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_recipe(*shared); });
}

}  // namespace sparq::cli
