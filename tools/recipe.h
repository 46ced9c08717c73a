// Multi-stage recipes (`sparq run RECIPE.yaml`, docs/recipes.md): a YAML
// file naming a model and a list of stages, each one sparq command
// (quantize, sparsify, calibrate, eval, verify, bench, check, inspect,
// export) with its options written as the command's flags without the
// dashes (`calib_len: 256` is `--calib-len 256`; `true` is a bare flag).
// The stages run the very code of the CLI commands, in order; each
// stage's JSON result is kept beside its output.
//
// This file is the part that needs no model: reading and checking the
// recipe, `--set` overrides, `${...}` substitution and the command line of
// each stage. Unknown keys, unknown commands, duplicate stage names and
// unresolvable variables are errors naming the recipe file and field.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sparq::cli {

struct RecipeStage {
    std::string name;
    std::string command;
    std::optional<std::string> input;   // default: see stage_input
    std::optional<std::string> output;  // writing commands; default <output_dir>/<name>.<ext>
    // Option name (snake or kebab case) -> value as written ("true" /
    // "false" for booleans), in the recipe's order.
    std::vector<std::pair<std::string, std::string>> options;
};

struct Recipe {
    std::string file;        // where it was read (for messages)
    std::string model;       // the input model
    std::string output_dir;  // default: "<recipe file stem>.out" in the working directory
    std::vector<RecipeStage> stages;
};

// Parses YAML text. `file` names it in errors and gives the default
// output_dir. Throws sparq::Error for bad YAML or a malformed recipe.
Recipe parse_recipe(const std::string& yaml_text, const std::string& file);
Recipe read_recipe(const std::string& path);

// `--set KEY=VALUE`: KEY is `model`, `output_dir`, `STAGE.input`,
// `STAGE.output`, or `STAGE.OPTION` (added if the stage lacks it). An
// unknown stage or a malformed assignment is a sparq::Error naming --set.
void apply_override(Recipe& recipe, const std::string& assignment);

// Whether a command writes a file (-o), and the extension of its default
// output.
bool command_writes_output(const std::string& command);

// Replaces ${model}, ${output_dir}, ${output:STAGE}, ${report:STAGE} and
// ${NAME} (an environment variable; SPARQ_DATA defaults to ../shared/data)
// in every string of the recipe, in place. `report` paths are the stages'
// JSON results (<output_dir>/<stage>.json); `output` paths must belong to
// writing stages, and a stage may name only stages that run before it.
// Throws sparq::Error naming the field for an unknown variable or stage.
void resolve_recipe(Recipe& recipe, const std::function<std::optional<std::string>(const std::string&)>& getenv_fn);

// The path of a stage's output (writing stages) and of its JSON result.
std::string stage_output(const Recipe& recipe, const RecipeStage& stage);
std::string stage_report(const Recipe& recipe, const RecipeStage& stage);
// The model a stage reads: its `input`, else for quantize, sparsify,
// calibrate and export the recipe's model, and for the others the output
// of the latest quantize/sparsify stage before it (the recipe's model when
// there is none). Empty for check, which reads reports.
std::string stage_input(const Recipe& recipe, size_t index);

// The flag of an option as the recipe writes it: calib_len -> --calib-len.
std::string option_flag(const std::string& key);

// The sparq command line of stage `index` (without "sparq"), with --json
// and the shared flags given (`extra`: e.g. --threads N, --quiet).
std::vector<std::string> stage_arguments(const Recipe& recipe, size_t index, const std::vector<std::string>& extra);

}  // namespace sparq::cli
