// Mixed precision under a size budget (passes/mixed_precision.h): the
// solver against brute force, the budget on the real stories260K (met,
// never exceeded, the written bytes equal to the plan's), more budget never
// predicting a worse loss, a budget below the smallest plan as a clear
// error, and the options' keys.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/mapped_file.h"
#include "models/sparq_model.h"
#include "passes/mixed_precision.h"
#include "test_data.h"

namespace sparq {
namespace {

// A random multiple-choice instance: sizes in multiples of 64 bytes (as the
// file stores them), errors decreasing with size like real candidates.
std::vector<MixedTensorCandidates> random_instance(std::mt19937& rng, int tensors, int candidates) {
    std::uniform_int_distribution<int64_t> size_step(1, 6);
    std::uniform_real_distribution<double> error(0.1, 10.0);
    std::vector<MixedTensorCandidates> out(static_cast<size_t>(tensors));
    for (int t = 0; t < tensors; ++t) {
        out[t].name = std::to_string(t).insert(0, 1, 't');  // GCC 12's -Wrestrict misfires on "t" + to_string(t)
        int64_t bytes = 64 * size_step(rng);
        double e = error(rng) * 10;
        for (int c = 0; c < candidates; ++c) {
            MixedCandidate cand;
            cand.bytes = bytes;
            cand.error = e;
            out[t].candidates.push_back(cand);
            bytes += 64 * size_step(rng);
            e *= std::uniform_real_distribution<double>(0.2, 1.05)(rng);  // not always convex, not always monotone
        }
    }
    return out;
}

// Bytes and summed error of one candidate per tensor.
struct PickTotals {
    int64_t bytes = 0;
    double error = 0;
};
PickTotals totals(const std::vector<MixedTensorCandidates>& tensors, const std::vector<size_t>& pick) {
    PickTotals sum;
    for (size_t t = 0; t < tensors.size(); ++t) {
        sum.bytes += tensors[t].candidates[pick[t]].bytes;
        sum.error += tensors[t].candidates[pick[t]].error;
    }
    return sum;
}

// The least summed error over every combination within the budget (inf if none).
double brute_force(const std::vector<MixedTensorCandidates>& tensors, int64_t budget) {
    double best = std::numeric_limits<double>::infinity();
    std::vector<size_t> pick(tensors.size(), 0);
    while (true) {
        const PickTotals sum = totals(tensors, pick);
        if (sum.bytes <= budget) best = std::min(best, sum.error);
        size_t t = 0;
        while (t < pick.size() && ++pick[t] == tensors[t].candidates.size()) pick[t++] = 0;
        if (t == pick.size()) return best;
    }
}

TEST(MixedPrecisionSolver, MatchesBruteForceOnTinyInstances) {
    std::mt19937 rng(7);
    for (int instance = 0; instance < 40; ++instance) {
        const auto tensors = random_instance(rng, 4, 4);
        int64_t smallest = 0, largest = 0;
        for (const auto& t : tensors) {
            smallest += t.candidates.front().bytes;
            largest += t.candidates.back().bytes;
        }
        for (int64_t budget = smallest - 64; budget <= largest + 64; budget += 32) {
            const double expected = brute_force(tensors, budget);
            const auto picks = solve_mixed_budget(tensors, budget);
            if (!std::isfinite(expected)) {
                EXPECT_FALSE(picks.has_value()) << "instance " << instance << " budget " << budget;
                continue;
            }
            ASSERT_TRUE(picks.has_value()) << "instance " << instance << " budget " << budget;
            const PickTotals sum = totals(tensors, *picks);
            EXPECT_LE(sum.bytes, budget);
            EXPECT_NEAR(sum.error, expected, 1e-9 * expected) << "instance " << instance << " budget " << budget;
        }
    }
}

TEST(MixedPrecisionSolver, CoarseUnitsStillRespectTheBudget) {
    // A unit of 256 bytes rounds sizes up: never over budget, never better
    // than the exact optimum.
    std::mt19937 rng(11);
    for (int instance = 0; instance < 20; ++instance) {
        const auto tensors = random_instance(rng, 5, 3);
        int64_t largest = 0;
        for (const auto& t : tensors) largest += t.candidates.back().bytes;
        const int64_t budget = largest * 2 / 3;
        const auto picks = solve_mixed_budget(tensors, budget, 256);
        if (!picks) continue;
        const PickTotals sum = totals(tensors, *picks);
        EXPECT_LE(sum.bytes, budget);
        EXPECT_GE(sum.error, brute_force(tensors, budget) * (1 - 1e-12));
    }
}

ModelSource stories() { return load_model(testing::data_path("stories260K/hf")); }

QuantizeOptions mixed_options(double target_bpw, bool calibrated) {
    QuantizeOptions o;
    o.target_bpw = target_bpw;
    if (calibrated) {
        o.method = "gptq";
        o.calib = testing::data_path("text/tinystories-calibration-selfgen.txt");
        o.calib_samples = 16;
        o.calib_len = 64;
    }
    return o;
}

TEST(MixedPrecision, WrittenFileMeetsTheBudgetOnStories260K) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-calibration-selfgen.txt");
    const ModelSource model = stories();
    for (double target : {3.25, 4.5}) {
        const QuantizeOptions options = mixed_options(target, true);
        const QuantizeResult r = quantize_model(model, options);
        // weight_bytes comes from the stored entries themselves, as the writer counts them.
        EXPECT_LE(r.file_bits_per_weight, target);
        // "Exactly": no candidate step is as large as 0.05 bits per weight of this model.
        EXPECT_GT(r.file_bits_per_weight, target - 0.05) << target;
        ASSERT_FALSE(r.mixed_plan.is_null());
        EXPECT_EQ(r.mixed_plan["planned_bytes"].get<int64_t>(), r.weight_bytes);
        EXPECT_EQ(r.mixed_plan["sensitivity"], "hessian+kl");
        // The embedding is in the plan, and the plan mixes widths.
        std::set<int> bits;
        bool embedding_planned = false;
        for (const auto& t : r.mixed_plan["tensors"]) {
            if (t["name"] == "model.embed_tokens.weight") embedding_planned = true;
            if (t["scheme"] != "f32") bits.insert(t["bits"].get<int>());
        }
        EXPECT_TRUE(embedding_planned);
        EXPECT_GE(bits.size(), 2u) << target;
        // The file written from the result holds those bytes.
        const std::string path = testing::temp_dir("mixed_precision") + "/mixed.sparq";
        write_sparq_model(path, model.config, *model.tokenizer, r.tensors, {{"quantization", r.mixed_plan}});
        uint64_t stored = 0;
        for (const auto& e : r.tensors) stored += stored_entry_bytes(e);
        EXPECT_EQ(static_cast<int64_t>(stored), r.weight_bytes);
        EXPECT_TRUE(file_exists(path));
    }
}

TEST(MixedPrecision, MoreBudgetNeverPredictsAWorseLoss) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource model = stories();
    for (bool calibrated : {false, true}) {
        double previous = std::numeric_limits<double>::infinity();
        // Each calibrated plan reruns the statistics: fewer budgets there.
        const std::vector<double> targets = calibrated ? std::vector<double>{3.0, 4.0, 6.5}
                                                       : std::vector<double>{2.75, 3.0, 3.5, 4.0, 5.0, 6.5, 8.5, 12.0};
        for (double target : targets) {
            const MixedPrecisionPlan plan = plan_mixed_precision(model, mixed_options(target, calibrated));
            EXPECT_LE(plan.file_bits_per_weight, target);
            EXPECT_LE(plan.predicted_loss, previous) << "target " << target << " calibrated " << calibrated;
            previous = plan.predicted_loss;
        }
    }
}

TEST(MixedPrecision, BudgetBelowTheSmallestPlanNamesTheMinimum) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource model = stories();
    const MixedPrecisionPlan smallest = plan_mixed_precision(model, mixed_options(100.0, false));
    ASSERT_GT(smallest.minimum_bpw, 2.0);
    try {
        plan_mixed_precision(model, mixed_options(smallest.minimum_bpw - 0.1, false));
        FAIL() << "a budget below the minimum was accepted";
    } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("--target-bpw"), std::string::npos) << what;
        EXPECT_NE(what.find("minimum achievable"), std::string::npos) << what;
        char minimum[32];
        std::snprintf(minimum, sizeof minimum, "%.4f", smallest.minimum_bpw);
        EXPECT_NE(what.find(minimum), std::string::npos) << what;
    }
    // At the minimum itself every tensor takes its smallest candidate.
    const MixedPrecisionPlan at_minimum = plan_mixed_precision(model, mixed_options(smallest.minimum_bpw, false));
    EXPECT_LE(at_minimum.file_bits_per_weight, smallest.minimum_bpw);
}

TEST(MixedPrecisionOptions, ParsedAndRejected) {
    const QuantizeOptions o = parse_quantize_options({{"target_bpw", 4.5}, {"mixed_sensitivity", "hessian"}});
    EXPECT_DOUBLE_EQ(o.target_bpw, 4.5);
    EXPECT_EQ(o.mixed_sensitivity, "hessian");
    EXPECT_THROW(parse_quantize_options({{"target_bpw", 4.5}, {"target_bits", 4}}), Error);
    EXPECT_THROW(parse_quantize_options({{"target_bpw", -1.0}}), Error);
    EXPECT_THROW(parse_quantize_options({{"target_bpw", "four"}}), Error);
    EXPECT_THROW(parse_quantize_options({{"mixed_sensitivity", "mse"}}), Error);
}

}  // namespace
}  // namespace sparq
