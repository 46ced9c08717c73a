// Running a test once per SIMD target: the targets a dispatched function
// was compiled for that this CPU supports, and a fixture that forces
// Highway's dispatch to the test's target for the length of each test.
#pragma once

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sparq::testing {

// Every target in `compiled` (a mask such as HWY_TARGETS) this CPU runs.
inline std::vector<int64_t> runnable_targets(int64_t compiled) {
    std::vector<int64_t> out;
    const auto targets = static_cast<uint64_t>(hwy::SupportedTargets() & compiled);
    for (int i = 0; i < 64; ++i) {
        if (targets & (uint64_t{1} << i)) out.push_back(static_cast<int64_t>(uint64_t{1} << i));
    }
    return out;
}

class ForcedTarget : public ::testing::TestWithParam<int64_t> {
protected:
    void SetUp() override { hwy::SetSupportedTargetsForTest(GetParam()); }
    void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

inline std::string target_param_name(const ::testing::TestParamInfo<int64_t>& info) {
    return hwy::TargetName(info.param);
}

}  // namespace sparq::testing
