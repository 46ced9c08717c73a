// sparq check end to end through its CLI11 command: exit 0 when the limits
// hold, 3 when one is broken (and the JUnit file says which), 1 for a
// report that cannot be read, usage error without a limit.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tools/command.h"
#include "run_cli.h"
#include "test_data.h"

namespace sparq::cli {
namespace {

std::string write_json(const std::string& dir, const std::string& name, const nlohmann::json& j) {
    const std::string path = dir + "/" + name;
    std::ofstream(path) << j.dump();
    return path;
}

// The exit code sparq would return for `sparq <line>`.
int exit_code(const std::string& line) {
    std::vector<std::string> args;
    std::istringstream words(line);
    for (std::string w; words >> w;) args.push_back(w);
    return testing_support::run_cli(args);
}

TEST(CheckCommand, ExitCodesFollowTheContract) {
    const std::string dir = testing::temp_dir("check_command");
    const nlohmann::json base = {{"ppl", 10.0}, {"kld_mean", 0.0}, {"ctx", 256}, {"chunks", 8}};
    nlohmann::json compressed = base;
    compressed["ppl"] = 10.3;
    compressed["kld_mean"] = 0.002;
    const std::string b = write_json(dir, "base.json", base), r = write_json(dir, "q.json", compressed);
    const std::string junit = dir + "/gate.xml";
    std::filesystem::remove(junit);
    EXPECT_EQ(exit_code("check --report " + r + " --baseline " + b + " --max-ppl-increase-pct 5 --max-kld 0.01"), 0);
    EXPECT_EQ(exit_code("check --report " + r + " --baseline " + b + " --max-ppl-increase-pct 2 --junit " + junit), 3);
    std::ifstream in(junit);
    ASSERT_TRUE(in) << "no JUnit file";
    std::stringstream xml;
    xml << in.rdbuf();
    EXPECT_NE(xml.str().find("failures=\"1\""), std::string::npos) << xml.str();
    EXPECT_EQ(exit_code("check --report " + dir + "/missing.json --baseline " + b + " --max-kld 1"), 1);
    EXPECT_EQ(exit_code("check --report " + r + " --baseline " + b), 2);  // no limit
}

}  // namespace
}  // namespace sparq::cli
