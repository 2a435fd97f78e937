#pragma once
// Streaming activation statistics gathered during a calibration pass (specs/algorithms.md §2): one set per
// (block, LinearInput), i.e. per distinct input of the linear layers (q/k/v share one, gate/up share one).
// Activations are never stored; every statistic is a running sum, maximum or count:
//
// - token count, exact min / max / absmax over all values;
// - per input channel j: absmax a_j = max_t |x_tj| (SmoothQuant, §4), mean |x| (AWQ, §5), mean x²
//   (llama.cpp imatrix, §8.3); sums are kept in double;
// - a histogram of all values whose range is not known in advance (DoublingHistogram below);
// - optionally the Hessian sum XᵀX = Σ_t x_t x_tᵀ (cols × cols, double; GPTQ, §3). It is big
//   (cols² · 8 bytes: 128 MiB for cols = 4096, 0.9 GiB for 11008), so it is collected only for the
//   blocks and inputs the options select;
// - outlier channels: channels whose absmax exceeds factor × the median channel absmax (the rule of
//   findOutlierChannels), and for each of them the share of tokens whose |x| in that channel exceeds the
//   same threshold (ExceedanceTracker in the .cpp; see "Outlier token shares" below).
//
// Non-finite values: a token row holding any NaN or ±Inf is skipped by every statistic and counted in
// nonFiniteTokens, so all statistics of an input describe the same set of tokens (a Hessian cannot absorb
// an Inf anyway). The caller turns a non-zero count into a warning.
//
// Threads: the forward pass calls onLinearInput() from one thread; the collector parallelises inside each
// call with OpenMP (over column blocks for the per-channel statistics, histogram and exceedances; over
// tiles of the lower triangle for the Hessian). Work is split by shape, never by thread count, and sums
// run in token order, so the results are identical for any OMP_NUM_THREADS.
//
// Outlier factor (default 20): activation outliers sit in a few fixed channels (§4.1) with magnitudes
// 10-100x the rest (LLM.int8(), SmoothQuant). With a per-tensor INT8 scale absmax/127 (§4.1), a channel at
// k × the median channel absmax leaves a typical channel about 127/k levels; at k = 20 that is about six
// levels (under 3 bits), where naive per-tensor W8A8 breaks down (§9.2: OPT-175B naive W8A8 PPL 93080
// against 10.99 FP16). Smaller k also flags the ordinary spread of channel maxima (a max over many
// tokens is itself a noisy, heavy-tailed statistic). channelAbsMax is kept in full so a user can re-run
// findOutlierChannels with any other k; the token shares, however, belong to the k used here.
//
// Outlier token shares: the threshold T = k · median(a_j) is only known after the last token. The
// median of channel maxima never decreases as tokens arrive, so the running threshold T_run (computed after
// each call's maxima are updated) is a lower bound of the final T: a value with |x| <= T_run can never
// exceed T and is dropped. Values above T_run are kept per channel, exactly (as floats), and pruned
// whenever T_run has risen; at the end each channel's count of |x| > T is exact. If the kept values of
// one input exceed exceedanceBudget even after pruning, that input switches to per-channel counts in
// log-spaced bins (16 per octave, edges 2^(i/16)) of the values above T_run; the share then counts the
// bins above T fully and the bin holding T log-linearly, which is off by at most that bin's count, and
// outlierShareExact is false.

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <nlohmann/json_fwd.hpp>

#include "model/ActivationObserver.h"

namespace qs::core {

// A histogram symmetric about 0 whose range grows as values arrive. It has a fixed, even number of bins
// B (a multiple of 4) of equal width over [-R, R), each bin half-open [e_i, e_{i+1}), e_i = -R + i·2R/B.
// R is always a power of two: the first non-zero value sets R to the smallest power of two strictly
// greater than its magnitude, and a later value with |v| >= R doubles R (as often as needed). Doubling
// merges adjacent bin pairs into the central B/2 bins and empties the outer quarters; since R and the bin
// width are powers of two, every old bin lies inside exactly one new bin, so the counts equal those of
// binning all values at the final range directly. The final R is therefore the smallest power of two above
// the overall absmax, whatever the order or chunking of the data. Zeros always fall in bin B/2.
// Resolution: the bulk of a distribution with outliers 100x its scale spans about B/200 bins; B = 2048 by
// default keeps about 10 bins there, and exact min/max are kept beside the histogram.
class DoublingHistogram
{
public:
    explicit DoublingHistogram(int bins = 2048); // throws Error unless bins >= 4 and a multiple of 4

    // Grows R (by doubling) until R > absMax. Call before binning values with |v| <= absMax.
    void ensureRange(double absMax);
    // Bin of a finite value inside the current range (-R <= v < R); 0 maps to B/2 even before R is set.
    int binOf(double v) const { return binAt(v, m_scale, m_bins / 2); }
    // binOf() from copies of scale() and bins() / 2, for hot loops that keep them in registers.
    static int binAt(double v, double scale, int half)
    {
        // floor by truncation and correction: exact (v·scale is exact) and cheaper than std::floor.
        const double y = v * scale;
        int i = int(y);
        i -= double(i) > y ? 1 : 0;
        return i + half;
    }
    double scale() const { return m_scale; } // B / (2R); 0 while R is 0
    void add(double v); // ensureRange(|v|), then counts one value
    // Adds counts gathered with binOf() at the current range (e.g. per-thread partial histograms).
    void addCounts(const std::vector<uint64_t> &counts);

    int bins() const { return m_bins; }
    double range() const { return m_range; } // R; 0 while no non-zero value has arrived
    const std::vector<uint64_t> &counts() const { return m_counts; }
    uint64_t total() const;
    // B + 1 edges; while R is 0 (only zeros seen) they are drawn for R = 1.
    std::vector<double> edges() const;

private:
    int m_bins;
    double m_range = 0.0;
    double m_scale = 0.0; // B / (2R), a power of two, so v · m_scale is exact
    std::vector<uint64_t> m_counts;
};

// The most histogram bins the collector takes and the statistics file reader accepts (128 MiB of counts).
constexpr int kMaxActivationHistogramBins = 1 << 24;

struct ActivationStatsOptions
{
    int histogramBins = 2048; // multiple of 4, at most kMaxActivationHistogramBins
    double outlierFactor = 20.0; // k (see the header comment for the choice)
    std::vector<int> blocks; // blocks to observe (wantsBlock); empty: all; -1 is the lm_head input
    bool collectHessians = false;
    std::vector<int> hessianBlocks; // with collectHessians: empty means every observed block
    std::vector<LinearInput> hessianInputs; // with collectHessians: empty means every input
    // Values kept per (block, input) for exact outlier token shares before switching to binned counts
    // (4 bytes each; 2^20 = 4 MiB per input).
    int64_t exceedanceBudget = int64_t(1) << 20;

    static ActivationStatsOptions defaults() { return {}; }
};

// The statistics of one linear input, as plain values.
struct InputActivationStats
{
    int block = 0; // -1 for the lm_head input
    LinearInput input = LinearInput::AttnIn;
    int64_t cols = 0;
    uint64_t tokens = 0; // finite token rows seen: every statistic below is over these
    uint64_t nonFiniteTokens = 0; // rows skipped because they held a NaN or Inf

    // 0 when tokens == 0.
    double min = 0.0;
    double max = 0.0;
    double absMax = 0.0;

    std::vector<float> channelAbsMax; // a_j (exact: a maximum of floats)
    std::vector<double> channelMeanAbs; // mean_t |x_tj|
    std::vector<double> channelMeanSquare; // mean_t x_tj²

    // Histogram of every value: range R, B counts; edges() gives the B + 1 bin edges.
    double histogramRange = 0.0;
    std::vector<uint64_t> histogramCounts;
    std::vector<double> histogramEdges() const;

    double outlierFactor = 0.0; // k
    double outlierMedian = 0.0; // median channel absmax
    double outlierThreshold = 0.0; // k × median
    std::vector<int> outlierChannels; // ascending
    std::vector<double> outlierTokenShare; // per outlier channel: share of tokens with |x| > threshold
    bool outlierShareExact = true;

    bool hasHessian = false;
    Eigen::MatrixXd hessian; // Σ_t x_t x_tᵀ over the tokens (cols × cols, symmetric); empty unless hasHessian

    // Canonical names of the linear layers reading this input: q/k/v_proj for attn_in, ..., "lm_head".
    std::vector<std::string> layers() const;
};

// Per-input summary for the CLI's JSON and tables.
struct ActivationSummary
{
    struct Channel
    {
        int channel = 0;
        double absMax = 0.0;
        double ratio = 0.0; // absMax / median channel absmax
        double tokenShare = 0.0; // share of tokens above the threshold
    };

    int block = 0;
    std::string input; // linearInputName
    std::vector<std::string> layers;
    int64_t cols = 0;
    uint64_t tokens = 0;
    uint64_t nonFiniteTokens = 0;
    double min = 0.0;
    double max = 0.0;
    double absMax = 0.0;
    double meanAbs = 0.0; // over all values
    double rms = 0.0; // sqrt(mean x²) over all values
    double medianChannelAbsMax = 0.0;
    double outlierFactor = 0.0;
    double outlierThreshold = 0.0;
    int outlierCount = 0;
    std::vector<Channel> topOutliers; // by absmax, largest first
    bool outlierShareExact = true;
    bool hasHessian = false;

    // Keys: block, input, layers, cols, tokens, non_finite_tokens, min, max, absmax, mean_abs, rms,
    // median_channel_absmax, outlier_factor, outlier_threshold, outlier_count,
    // top_outliers [{channel, absmax, ratio, token_share}], outlier_share_exact, hessian.
    nlohmann::json toJson() const;
};

ActivationSummary summarizeActivations(const InputActivationStats &stats, int topChannels = 8);

class ActivationStatsCollector final : public ActivationObserver
{
public:
    explicit ActivationStatsCollector(ActivationStatsOptions options = ActivationStatsOptions::defaults());
    ~ActivationStatsCollector() override;
    ActivationStatsCollector(const ActivationStatsCollector &) = delete;
    ActivationStatsCollector &operator=(const ActivationStatsCollector &) = delete;

    // Throws Error when cols differs from an earlier call for the same (block, input) or is not positive.
    void onLinearInput(int block, LinearInput input, const float *x, int64_t tokens, int64_t cols) override;
    bool wantsBlock(int block) const override;

    bool wantsHessian(int block, LinearInput input) const;
    // Bytes the selected Hessians will take for a model of these dimensions (to warn before a run).
    uint64_t hessianBytes(const HyperParams &hp) const;

    const ActivationStatsOptions &options() const { return m_options; }
    // Final statistics, ordered by block (0, 1, ..., then -1) and input. results() copies (Hessians
    // included); takeResults() moves them out and leaves the collector empty, ready for a new pass.
    std::vector<InputActivationStats> results() const;
    std::vector<InputActivationStats> takeResults();

private:
    struct Accumulator;
    struct Key
    {
        int block;
        LinearInput input;
        bool operator<(const Key &o) const;
    };

    Accumulator &accumulator(int block, LinearInput input, int64_t cols);

    ActivationStatsOptions m_options;
    std::map<Key, std::unique_ptr<Accumulator>> m_accumulators;
    std::vector<float> m_scratch; // finite rows of a chunk that held non-finite ones
};

} // namespace qs::core
