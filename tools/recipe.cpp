#include "tools/recipe.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/mapped_file.h"

namespace sparq::cli {

namespace {

const std::set<std::string> kCommands = {"quantize", "sparsify", "calibrate", "eval", "verify",
                                         "bench",    "check",    "inspect",   "export"};

std::string default_extension(const std::string& command) {
    if (command == "calibrate") return ".h5";
    if (command == "export") return ".gguf";
    return ".sparq";
}

bool valid_stage_name(const std::string& name) {
    if (name.empty()) return false;
    for (char c : name) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
    }
    return true;
}

std::string scalar_of(const YAML::Node& node, const std::string& file, const std::string& field) {
    if (!node.IsScalar()) fail_in({file, "", field}, "expected a single value (a string, number or boolean)");
    return node.Scalar();
}

void reject_unknown_keys(const YAML::Node& map, const std::set<std::string>& known, const std::string& file,
                         const std::string& where) {
    for (const auto& kv : map) {
        const std::string key = kv.first.as<std::string>();
        if (!known.count(key)) {
            std::string list;
            for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
            fail_in({file, "", where + key}, "unknown key (expected one of: ", list, ")");
        }
    }
}

RecipeStage* find_stage(Recipe& recipe, const std::string& name) {
    for (RecipeStage& s : recipe.stages) {
        if (s.name == name) return &s;
    }
    return nullptr;
}

}  // namespace

bool command_writes_output(const std::string& command) {
    return command == "quantize" || command == "sparsify" || command == "calibrate" || command == "export";
}

namespace {

Recipe parse_recipe_node(const YAML::Node& root, const std::string& file);

}  // namespace

Recipe parse_recipe(const std::string& yaml_text, const std::string& file) {
    try {
        return parse_recipe_node(YAML::Load(yaml_text), file);
    } catch (const YAML::Exception& e) {
        // Bad YAML, or a node of the wrong kind where a key or value was read.
        fail_in({file, "", ""}, "not a valid recipe (YAML line ", e.mark.line + 1, "): ", e.msg);
    }
}

namespace {

Recipe parse_recipe_node(const YAML::Node& root, const std::string& file) {
    if (!root.IsMap()) fail_in({file, "", ""}, "expected a mapping with 'model' and 'stages'");
    reject_unknown_keys(root, {"model", "output_dir", "stages"}, file, "");
    Recipe r;
    r.file = file;
    if (!root["model"]) fail_in({file, "", "model"}, "missing: the model the recipe starts from");
    r.model = scalar_of(root["model"], file, "model");
    r.output_dir = root["output_dir"] ? scalar_of(root["output_dir"], file, "output_dir")
                                      : std::filesystem::path(file).stem().string() + ".out";
    const YAML::Node stages = root["stages"];
    if (!stages || !stages.IsSequence() || stages.size() == 0) {
        fail_in({file, "", "stages"}, "expected a non-empty list of stages");
    }
    for (size_t i = 0; i < stages.size(); ++i) {
        const YAML::Node s = stages[i];
        const std::string where = "stages[" + std::to_string(i) + "]";
        if (!s.IsMap()) fail_in({file, "", where}, "expected a mapping with 'name' and 'command'");
        reject_unknown_keys(s, {"name", "command", "input", "output", "options"}, file, where + ".");
        RecipeStage stage;
        if (!s["command"]) fail_in({file, "", where + ".command"}, "missing");
        stage.command = scalar_of(s["command"], file, where + ".command");
        if (!kCommands.count(stage.command)) {
            fail_in({file, "", where + ".command"}, "'", stage.command,
                    "' is not a recipe command (quantize, sparsify, calibrate, eval, verify, bench, check, inspect, "
                    "export)");
        }
        stage.name = s["name"] ? scalar_of(s["name"], file, where + ".name") : stage.command;
        if (!valid_stage_name(stage.name)) {
            fail_in({file, "", where + ".name"}, "'", stage.name, "': use letters, digits, '_' and '-'");
        }
        if (find_stage(r, stage.name)) {
            fail_in({file, "", where + ".name"}, "'", stage.name, "' names two stages; give each a distinct name");
        }
        if (s["input"]) {
            if (stage.command == "check") fail_in({file, "", where + ".input"}, "check reads reports, not a model");
            stage.input = scalar_of(s["input"], file, where + ".input");
        }
        if (s["output"]) {
            if (!command_writes_output(stage.command)) {
                fail_in({file, "", where + ".output"}, stage.command, " writes no file");
            }
            stage.output = scalar_of(s["output"], file, where + ".output");
        }
        if (const YAML::Node o = s["options"]) {
            if (!o.IsMap()) fail_in({file, "", where + ".options"}, "expected a mapping of option: value");
            for (const auto& kv : o) {
                const std::string key = kv.first.as<std::string>();
                if (key.empty() || key.front() == '-') {
                    fail_in({file, "", where + ".options." + key}, "write options without dashes (calib_len: 256)");
                }
                if (key == "output" || key == "o" || key == "json") {
                    fail_in({file, "", where + ".options." + key}, "is set by the recipe runner",
                            key == "json" ? "" : "; use the stage's 'output'");
                }
                stage.options.emplace_back(key, scalar_of(kv.second, file, where + ".options." + key));
            }
        }
        r.stages.push_back(std::move(stage));
    }
    return r;
}

}  // namespace

Recipe read_recipe(const std::string& path) { return parse_recipe(read_text_file(path), path); }

void apply_override(Recipe& recipe, const std::string& assignment) {
    const size_t eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0) {
        fail_in({"", "", "--set"}, "expected KEY=VALUE, got '", assignment, "'");
    }
    const std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
    if (key == "model") {
        recipe.model = value;
        return;
    }
    if (key == "output_dir") {
        recipe.output_dir = value;
        return;
    }
    const size_t dot = key.find('.');
    if (dot == std::string::npos || dot + 1 == key.size()) {
        fail_in({"", "", "--set"}, "'", key, "': expected model, output_dir, STAGE.input, STAGE.output or STAGE.OPTION");
    }
    RecipeStage* stage = find_stage(recipe, key.substr(0, dot));
    if (!stage) fail_in({"", "", "--set"}, "'", key, "': the recipe has no stage '", key.substr(0, dot), "'");
    const std::string field = key.substr(dot + 1);
    if (field == "input") {
        stage->input = value;
    } else if (field == "output") {
        if (!command_writes_output(stage->command)) fail_in({"", "", "--set"}, "'", key, "': ", stage->command, " writes no file");
        stage->output = value;
    } else {
        for (auto& [k, v] : stage->options) {
            if (k == field) {
                v = value;
                return;
            }
        }
        stage->options.emplace_back(field, value);
    }
}

std::string stage_output(const Recipe& recipe, const RecipeStage& stage) {
    if (stage.output) return *stage.output;
    return (std::filesystem::path(recipe.output_dir) / (stage.name + default_extension(stage.command))).string();
}

std::string stage_report(const Recipe& recipe, const RecipeStage& stage) {
    return (std::filesystem::path(recipe.output_dir) / (stage.name + ".json")).string();
}

std::string stage_input(const Recipe& recipe, size_t index) {
    const RecipeStage& s = recipe.stages.at(index);
    if (s.command == "check") return "";
    if (s.input) return *s.input;
    if (command_writes_output(s.command)) return recipe.model;
    for (size_t i = index; i-- > 0;) {
        const RecipeStage& before = recipe.stages[i];
        if (before.command == "quantize" || before.command == "sparsify") return stage_output(recipe, before);
    }
    return recipe.model;
}

void resolve_recipe(Recipe& recipe, const std::function<std::optional<std::string>(const std::string&)>& getenv_fn) {
    // Every stage's output is known before substitution (outputs may not
    // refer to other stages' outputs). A stage may name only stages before
    // it (`before` of them): a later stage's file would be stale or missing
    // when it runs. -1: no stage may be named here.
    const auto substitute = [&](const std::string& text, const std::string& field, int64_t before) {
        const bool allow_stages = before >= 0;
        std::string out;
        size_t at = 0;
        while (true) {
            const size_t open = text.find("${", at);
            if (open == std::string::npos) break;
            const size_t close = text.find('}', open);
            if (close == std::string::npos) fail_in({recipe.file, "", field}, "unclosed '${' in '", text, "'");
            out += text.substr(at, open - at);
            const std::string name = text.substr(open + 2, close - open - 2);
            const size_t colon = name.find(':');
            if (name == "model") {
                out += recipe.model;
            } else if (name == "output_dir") {
                out += recipe.output_dir;
            } else if (colon != std::string::npos) {
                const std::string kind = name.substr(0, colon), stage_name = name.substr(colon + 1);
                if (!allow_stages) fail_in({recipe.file, "", field}, "'${", name, "}' cannot be used here");
                const RecipeStage* stage = find_stage(recipe, stage_name);
                if (!stage) fail_in({recipe.file, "", field}, "'${", name, "}': no stage named '", stage_name, "'");
                if (stage - recipe.stages.data() >= before) {
                    fail_in({recipe.file, "", field}, "'${", name, "}': stage '", stage_name,
                            "' does not run before this one");
                }
                if (kind == "output") {
                    if (!command_writes_output(stage->command)) {
                        fail_in({recipe.file, "", field}, "'${", name, "}': stage '", stage_name, "' (",
                                stage->command, ") writes no file");
                    }
                    out += stage_output(recipe, *stage);
                } else if (kind == "report") {
                    out += stage_report(recipe, *stage);
                } else {
                    fail_in({recipe.file, "", field}, "'${", name, "}': expected output:STAGE or report:STAGE");
                }
            } else {
                std::optional<std::string> value = getenv_fn(name);
                if (!value && name == "SPARQ_DATA") value = "../shared/data";
                if (!value) fail_in({recipe.file, "", field}, "'${", name, "}': no such variable in the environment");
                out += *value;
            }
            at = close + 1;
        }
        return out + text.substr(at);
    };
    recipe.model = substitute(recipe.model, "model", -1);
    recipe.output_dir = substitute(recipe.output_dir, "output_dir", -1);
    for (RecipeStage& s : recipe.stages) {
        if (s.output) s.output = substitute(*s.output, s.name + ".output", -1);
    }
    for (size_t i = 0; i < recipe.stages.size(); ++i) {
        RecipeStage& s = recipe.stages[i];
        const auto before = static_cast<int64_t>(i);
        if (s.input) s.input = substitute(*s.input, s.name + ".input", before);
        for (auto& [k, v] : s.options) v = substitute(v, s.name + ".options." + k, before);
    }
}

std::string option_flag(const std::string& key) {
    std::string flag = "--" + key;
    for (char& c : flag) c = c == '_' ? '-' : c;
    return flag;
}

std::vector<std::string> stage_arguments(const Recipe& recipe, size_t index, const std::vector<std::string>& extra) {
    const RecipeStage& s = recipe.stages.at(index);
    std::vector<std::string> args = {s.command};
    if (s.command != "check") args.push_back(stage_input(recipe, index));
    if (command_writes_output(s.command)) {
        args.push_back("-o");
        args.push_back(stage_output(recipe, s));
    }
    for (const auto& [key, value] : s.options) {
        const std::string flag = option_flag(key);
        if (value == "true") {
            args.push_back(flag);
        } else if (value != "false") {
            args.push_back(flag);
            args.push_back(value);
        }
    }
    args.push_back("--json");
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

}  // namespace sparq::cli
