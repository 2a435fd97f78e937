#include "quant/LayerCompare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include <nlohmann/json.hpp>
#include <omp.h>

#include "common/Error.h"
#include "common/CancelOnlyProgress.h"
#include "common/OmpScopes.h"
#include "eval/TextSource.h"
#include "model/Forward.h"
#include "quant/Awq.h"
#include "quant/Gptq.h"
#include "quant/QuantMetrics.h"
#include "quant/Rtn.h"
#include "quant/SmoothQuant.h"
#include "quant/ZeroQuant.h"
#include "tokenizer/Tokenizer.h"

namespace qs::core {

namespace {

using Clock = std::chrono::steady_clock;
using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMapF = Eigen::Map<const RowMatrixF>;

double secondsSince(Clock::time_point t0)
{
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

bool isBlockLinear(TensorRole r)
{
    return r == TensorRole::Q || r == TensorRole::K || r == TensorRole::V || r == TensorRole::O || r == TensorRole::Gate
        || r == TensorRole::Up || r == TensorRole::Down;
}

struct StopCapture
{
};

// Accumulates the statistics of one linear input, as the pipeline's gather pass does.
class CaptureObserver final : public ActivationObserver
{
public:
    CaptureObserver(LayerInputs &inputs, bool withCache, int64_t cacheBudget, std::vector<double> &sumAbs)
        : m_in(inputs)
        , m_withCache(withCache)
        , m_budget(cacheBudget)
        , m_sumAbs(sumAbs)
    { }

    void onLinearInput(int block, LinearInput input, const float *x, int64_t n, int64_t cols) override
    {
        if (block != m_in.block || input != m_in.input)
            return;
        if (cols != m_in.cols)
            throw Error(m_in.layer + ": input has " + std::to_string(cols) + " channels, the weight "
                + std::to_string(m_in.cols) + " columns");
        const Eigen::MatrixXd X = ConstMapF(x, n, cols).cast<double>();
        {
            SmallWorkScope small(0.5 * double(n) * double(cols) * double(cols));
            m_in.H.selfadjointView<Eigen::Lower>().rankUpdate(X.transpose());
        }
        for (int64_t t = 0; t < n; ++t) {
            const float *row = x + t * cols;
            for (int64_t c = 0; c < cols; ++c) {
                const float a = std::fabs(row[c]);
                m_in.absMax[size_t(c)] = std::max(m_in.absMax[size_t(c)], a);
                m_sumAbs[size_t(c)] += a;
            }
        }
        m_in.tokens += n;
        if (m_withCache && (m_in.cacheLengths.empty() || m_in.cachedTokens() + n <= m_budget)) {
            m_in.cache.insert(m_in.cache.end(), x, x + n * cols);
            m_in.cacheLengths.push_back(n);
        }
        throw StopCapture {}; // the rest of the block is not needed
    }
    bool wantsBlock(int block) const override { return block == m_in.block; }

private:
    LayerInputs &m_in;
    bool m_withCache;
    int64_t m_budget;
    std::vector<double> &m_sumAbs;
};

const char *groupText(int64_t g, char *buf, size_t size)
{
    if (g < 0)
        return "per channel";
    if (g == 0)
        return "per tensor";
    std::snprintf(buf, size, "g%lld", static_cast<long long>(g));
    return buf;
}

std::string valueText(const ParamValue &v)
{
    if (const auto *i = std::get_if<int64_t>(&v))
        return std::to_string(*i);
    if (const auto *d = std::get_if<double>(&v)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", *d);
        return buf;
    }
    if (const auto *b = std::get_if<bool>(&v))
        return *b ? "on" : "off";
    return std::get<std::string>(v);
}

// Shared bins: every entry's histogram uses the same lo/hi/count so they overlay.
Histogram binValues(const std::vector<float> &values, double lo, double hi, int bins)
{
    Histogram h;
    h.lo = lo;
    h.hi = hi;
    h.counts.assign(size_t(std::max(1, bins)), 0);
    const double w = (hi - lo) / double(h.counts.size());
    for (float v : values) {
        if (!std::isfinite(v))
            continue;
        const double k = w > 0.0 ? std::floor((double(v) - lo) / w) : 0.0;
        const size_t i = size_t(std::clamp(k, 0.0, double(h.counts.size() - 1)));
        ++h.counts[i];
    }
    return h;
}

} // namespace

bool layerCompareSupports(std::string_view method)
{
    return method == "rtn" || method == "zeroquant" || method == "gptq" || method == "smoothquant" || method == "awq";
}

int LayerComparison::bestIndex() const
{
    int best = -1;
    for (size_t i = 0; i < entries.size(); ++i) {
        if (!entries[i].error.empty())
            continue;
        if (best < 0 || entries[i].metrics.relOutputError < entries[size_t(best)].metrics.relOutputError)
            best = int(i);
    }
    return best;
}

std::string methodConfigLabel(const MethodConfig &config)
{
    const MethodInfo &info = config.info();
    std::string s = info.displayName;
    if (info.param("bits"))
        s += " " + std::to_string(config.getInt("bits")) + "-bit";
    const bool rowGroups = info.param("row_groups") && config.getBool("row_groups");
    char buf[32];
    if (rowGroups)
        s += " row groups of " + std::to_string(config.getInt("rows_per_group"));
    else if (info.param("group_size"))
        s += std::string(" ") + groupText(config.getInt("group_size"), buf, sizeof buf);
    if (const ParamSpec *sym = info.param("symmetric"); sym && config.getBool("symmetric") != std::get<bool>(sym->defaultValue))
        s += config.getBool("symmetric") ? " sym" : " asym";
    std::string extra;
    for (const ParamSpec &p : info.params) {
        if (p.name == "bits" || p.name == "group_size" || p.name == "symmetric" || p.name == "row_groups"
            || p.name == "rows_per_group")
            continue;
        const auto it = config.values().find(p.name);
        if (it == config.values().end() || it->second == p.defaultValue)
            continue;
        extra += (extra.empty() ? "" : ", ") + p.name + "=" + valueText(it->second);
    }
    if (!extra.empty())
        s += " (" + extra + ")";
    return s;
}

CalibrationSet makeLayerCompareCalibration(const Model &model, const LayerCompareOptions &options, Progress &progress)
{
    if (options.calibrationText.empty())
        throw Error("layer compare: no calibration text given");
    if (options.samples <= 0 || options.seqLen < 2)
        throw Error("layer compare: calibration needs at least one sample of two or more tokens");
    progress.message("tokenizing " + options.calibrationText);
    CalibrationSet calibration;
    // The same draw as runQuantization (Pipeline.cpp), so a comparison and a run see the same samples.
    if (options.calibrationMode == CalibrationMode::Windows) {
        const TokenizedText text = tokenizeTextFile(model, options.calibrationText, progress);
        calibration = makeCalibrationWindows(
            text.tokens, options.samples, options.seqLen, options.seed, options.calibrationText);
        describeCalibrationText(calibration, options.calibrationText, text.tokenizer);
    } else {
        const std::string text = readTextFile(options.calibrationText);
        const std::unique_ptr<Tokenizer> tokenizer = loadTokenizer(model);
        std::vector<std::vector<int32_t>> documents;
        for (const std::string &doc : splitDocuments(text, options.documentSeparator))
            documents.push_back(encodeWithSpecials(*tokenizer, doc, model.hparams.addBos));
        calibration = makeCalibrationDocuments(
            documents, options.samples, options.seqLen, options.seed, options.calibrationText);
        describeCalibrationText(calibration, options.calibrationText, tokenizer->name());
        calibration.separator = options.documentSeparator;
    }
    return calibration;
}

LayerInputs captureLayerInputs(const std::shared_ptr<const Model> &model, const std::string &layer,
    const CalibrationSet &calibration, const LayerCompareOptions &options, bool withCache, Progress &progress)
{
    if (!model)
        throw Error("layer compare: no model");
    const Tensor *t = model->find(layer);
    if (!t || !isBlockLinear(t->role) || t->block < 0)
        throw Error("layer compare: " + layer
            + " is not a block linear layer of the model (q/k/v/o_proj, gate/up/down_proj)");
    LayerInputs in;
    in.layer = layer;
    in.block = t->block;
    in.role = t->role;
    in.input = linearInputOf(t->role);
    in.cols = t->cols;
    in.H = Eigen::MatrixXd::Zero(in.cols, in.cols);
    in.absMax.assign(size_t(in.cols), 0.0f);
    std::vector<double> sumAbs(size_t(in.cols), 0.0);

    ForwardOptions fo;
    fo.threads = options.threads;
    ForwardEngine engine(model, fo);
    CaptureObserver observer(in, withCache, options.awqCacheTokens, sumAbs);
    const int64_t hidden = model->hparams.hiddenSize;
    progress.setTotal(double(calibration.samples.size()));
    progress.message("capturing the input of " + layer + " (" + std::to_string(calibration.samples.size())
        + " samples through " + std::to_string(in.block + 1) + " blocks)");
    std::vector<float> x;
    for (const CalibrationSample &s : calibration.samples) {
        progress.throwIfCancelled();
        const int64_t n = int64_t(s.tokens.size());
        x.assign(size_t(n * hidden), 0.0f);
        engine.embed(s.tokens.data(), n, x.data()); // also checks the token ids
        for (int b = 0; b < in.block; ++b) {
            progress.throwIfCancelled();
            engine.runBlock(b, x.data(), n);
        }
        try {
            engine.runBlock(in.block, x.data(), n, &observer);
        } catch (const StopCapture &) {
            // the layer's input has been seen
        }
        progress.advance(1.0);
    }
    in.H.triangularView<Eigen::StrictlyUpper>() = in.H.transpose();
    in.meanAbs.assign(size_t(in.cols), 0.0f);
    for (int64_t c = 0; c < in.cols; ++c)
        in.meanAbs[size_t(c)] = in.tokens > 0 ? float(sumAbs[size_t(c)] / double(in.tokens)) : 0.0f;
    if (in.tokens == 0)
        throw Error("layer compare: " + layer + ": no calibration tokens reached the layer");
    return in;
}

LayerCompareEntry quantizeLayerWithConfig(const Model &model, const LayerInputs &inputs, const std::vector<float> &W,
    const MethodConfig &config, Progress &progress)
{
    const Tensor &tensor = model.tensor(inputs.layer);
    const int64_t rows = tensor.rows, cols = tensor.cols;
    if (int64_t(W.size()) != rows * cols || cols != inputs.cols)
        throw Error("layer compare: " + inputs.layer + ": weights and inputs do not match the layer's shape");
    const std::string &method = config.method();
    if (!layerCompareSupports(method))
        throw Error("layer compare: method '" + method + "' cannot be run on one layer (rtn, zeroquant, gptq, "
            "smoothquant, awq)");
    CancelOnlyProgress cancel(progress);
    LayerCompareEntry e;
    e.config = config;
    e.label = methodConfigLabel(config);

    const auto t0 = Clock::now();
    std::vector<float> w = W; // working copy: scaled by SmoothQuant
    const WeightView view { w.data(), rows, cols };
    QuantizedTensor t;
    std::optional<GptqResult> gptq;
    std::string note;
    int activationBits = 0;
    const bool hasNorm = inputs.input == LinearInput::AttnIn || inputs.input == LinearInput::MlpIn;
    if (method == "rtn") {
        t = quantizeRtn(view, toRtnSpec(config), inputs.layer);
    } else if (method == "zeroquant") {
        const ZeroQuantOptions zo = toZeroQuantOptions(config);
        t = quantizeZeroQuantWeight(view, zo, inputs.layer);
        activationBits = zo.activationBits;
    } else if (method == "gptq") {
        const GptqOptions go = toGptqOptions(config);
        const GptqHessian prepared = prepareGptqHessian(inputs.H, go, inputs.layer);
        GptqResult gr = quantizeGptq(view, prepared, go, cancel, inputs.layer);
        if (gr.deadColumns > 0)
            note = std::to_string(gr.deadColumns) + " dead input columns zeroed";
        t = std::move(gr.tensor);
        gr.tensor = QuantizedTensor();
        gptq = std::move(gr);
    } else if (method == "smoothquant") {
        const SmoothQuantOptions so = toSmoothQuantOptions(config);
        activationBits = so.activationBits;
        std::vector<float> s;
        if (hasNorm) {
            // Every reader of the input counts for the column maxima (the norm's fold changes all of them).
            const std::vector<TensorRole> &readers = rolesReading(inputs.input);
            std::vector<std::vector<float>> siblings(readers.size());
            std::vector<WeightView> views;
            for (size_t k = 0; k < readers.size(); ++k) {
                if (readers[k] == inputs.role) {
                    views.push_back({ W.data(), rows, cols });
                    continue;
                }
                const Tensor &st = model.tensor(layerName(inputs.block, readers[k]));
                siblings[k] = model.readMatrix(st);
                views.push_back({ siblings[k].data(), st.rows, st.cols });
            }
            const SmoothingScales sc = computeSmoothingScales(inputs.absMax, views, config.getDouble("alpha"),
                "model.layers." + std::to_string(inputs.block)
                    + (inputs.input == LinearInput::AttnIn ? ".input_layernorm" : ".post_attention_layernorm"));
            s = sc.scales;
            applyInputScales(w.data(), rows, cols, s);
        } else {
            note = "no norm in front of this input: W8 without smoothing (as the SmoothQuant reference)";
        }
        t = quantizeSmoothedWeight(view, s, so.weightSpec, inputs.layer);
    } else { // awq
        AwqOptions ao = toAwqOptions(config);
        bool canFold = true;
        if (inputs.input == LinearInput::AttnOut && model.hparams.numHeads != model.hparams.numKvHeads) {
            canFold = false;
            note = "AWQ scaling skipped: o_proj's input cannot be folded into v_proj rows with grouped-query "
                   "attention (clip search only)";
            ao.nGrid = 1;
        }
        const ActivationView xv { inputs.cache.data(), inputs.cachedTokens(), cols };
        const std::vector<AwqLinear> linears = { { view, inputs.role, inputs.layer } };
        SmallWorkScope small(double(xv.tokens) * double(cols) * double(rows), double(1 << 28));
        AwqResult r = runAwq(xv, linears, ao, AwqModuleFn(), cancel, inputs.meanAbs);
        t = std::move(r.tensors.front());
        if (!canFold) {
            t.inputScales.clear();
            t.inputScalesSource.clear();
        } else {
            char buf[96];
            std::snprintf(buf, sizeof buf, "awq alpha %.2f (searched on this layer's own output)", r.search.bestAlpha);
            note = buf;
        }
    }
    const double seconds = secondsSince(t0);
    t.name = inputs.layer;
    t.method = method;

    // Metrics exactly as the pipeline's makeResult: effective weights against W, the layer's own H.
    LayerResult &m = e.metrics;
    m.name = inputs.layer;
    m.block = inputs.block;
    m.role = inputs.role;
    m.method = method;
    m.bits = t.bits;
    m.groupSize = int(config.getInt("group_size"));
    if (method == "zeroquant" && config.getBool("row_groups"))
        m.groupSize = -1;
    const std::vector<float> effective = t.inputScales.empty() ? std::vector<float>() : t.effectiveWeights();
    const float *wq = t.inputScales.empty() ? t.dequantized.data() : effective.data();
    {
        SmallWorkScope small(2.0 * double(rows) * double(cols) * double(cols));
        const LayerError le = layerError(W.data(), wq, rows, cols, &inputs.H);
        m.weightMse = le.weightMse;
        m.sqnrDb = le.sqnrDb;
        m.relOutputError = std::sqrt(std::max(0.0, le.relOutputError));
    }
    m.bitsPerWeight = t.bitsPerWeight();
    m.seconds = seconds;
    m.inputScales = t.inputScalesSource;
    m.activationBits = activationBits;
    m.note = note;
    if (gptq) {
        m.gptqLoss = gptq->loss;
        m.damp = gptq->percDampUsed;
        m.deadColumns = gptq->deadColumns;
    }
    e.tensor = std::move(t);
    return e;
}

LayerComparison compareLayerMethods(const std::shared_ptr<const Model> &model, const std::string &layer,
    const std::vector<MethodConfig> &configs, const LayerCompareOptions &options, Progress &progress)
{
    const auto t0 = Clock::now();
    if (!model)
        throw Error("layer compare: no model");
    if (configs.empty())
        throw Error("layer compare: no configurations to compare");
    for (const MethodConfig &c : configs) {
        if (!layerCompareSupports(c.method()))
            throw Error("layer compare: method '" + c.method()
                + "' cannot be run on one layer (rtn, zeroquant, gptq, smoothquant, awq)");
        c.validate("layer compare: " + methodConfigLabel(c));
    }
    const Tensor *tensor = model->find(layer);
    if (!tensor || !isBlockLinear(tensor->role) || tensor->block < 0)
        throw Error("layer compare: " + layer
            + " is not a block linear layer of the model (q/k/v/o_proj, gate/up/down_proj)");
    OmpThreadsScope threads(options.threads);

    LayerComparison out;
    out.layer = layer;
    out.block = tensor->block;
    out.role = tensor->role;
    out.rows = tensor->rows;
    out.cols = tensor->cols;

    const CalibrationSet calibration = makeLayerCompareCalibration(*model, options, progress);
    out.calibration = calibration.toJson();
    bool withCache = false;
    for (const MethodConfig &c : configs)
        withCache = withCache || c.method() == "awq";
    const auto tc = Clock::now();
    const LayerInputs inputs = captureLayerInputs(model, layer, calibration, options, withCache, progress);
    out.captureSeconds = secondsSince(tc);
    out.calibrationTokens = inputs.tokens;

    const std::vector<float> W = model->readMatrix(*tensor);
    progress.setTotal(double(configs.size()));
    for (const MethodConfig &c : configs) {
        progress.throwIfCancelled();
        const std::string label = methodConfigLabel(c);
        progress.message("quantizing " + layer + " with " + label);
        try {
            out.entries.push_back(quantizeLayerWithConfig(*model, inputs, W, c, progress));
        } catch (const Error &e) {
            LayerCompareEntry failed;
            failed.config = c;
            failed.label = label;
            failed.error = e.what();
            out.entries.push_back(std::move(failed));
        }
        progress.advance(1.0);
    }

    // Shared bins: the error range symmetric around 0, the weight range covering W and every result.
    double errMax = 0.0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (float v : W)
        if (std::isfinite(v)) {
            lo = std::min(lo, double(v));
            hi = std::max(hi, double(v));
        }
    std::vector<std::vector<float>> effective(out.entries.size());
    for (size_t i = 0; i < out.entries.size(); ++i) {
        const LayerCompareEntry &e = out.entries[i];
        if (!e.error.empty())
            continue;
        effective[i] = e.tensor.inputScales.empty() ? e.tensor.dequantized : e.tensor.effectiveWeights();
        for (size_t k = 0; k < W.size(); ++k) {
            const double v = effective[i][k];
            if (!std::isfinite(v))
                continue;
            lo = std::min(lo, v);
            hi = std::max(hi, v);
            errMax = std::max(errMax, std::fabs(v - double(W[k])));
        }
    }
    if (!(hi > lo)) {
        lo = std::isfinite(lo) ? lo - 0.5 : -0.5;
        hi = lo + 1.0;
    }
    if (!(errMax > 0.0))
        errMax = 1e-12;
    out.originalHistogram = binValues(W, lo, hi, options.histogramBins);
    std::vector<float> err(W.size());
    for (size_t i = 0; i < out.entries.size(); ++i) {
        LayerCompareEntry &e = out.entries[i];
        if (!e.error.empty())
            continue;
        for (size_t k = 0; k < W.size(); ++k)
            err[k] = effective[i][k] - W[k];
        e.errorHistogram = binValues(err, -errMax, errMax, options.histogramBins);
        e.weightHistogram = binValues(effective[i], lo, hi, options.histogramBins);
    }
    out.seconds = secondsSince(t0);
    return out;
}

} // namespace qs::core
