#pragma once
// Quantization runs made in-test on stories260K (real trained weights, models/stories260K-hf) with
// calibration windows from the TinyStories sample (text/tinystories_sample.txt): the set-up shared by the
// core tests of the pipeline, the layer comparison and the exporters (GGUF, GPTQ, HDF5 project). Each test
// still chooses its own sizes (samples, sequence length, evaluation), kept small for Debug+ASan runs.
//
// Header-only; tests that include it link qs_core. Open the data in initTestCase with
// QS_REQUIRE_TESTDATA (TestData.h), so a missing file skips the test (or fails it under CI).

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "TestData.h"
#include "common/Error.h"
#include "common/Progress.h"
#include "quant/Pipeline.h"
#include "quant/Plan.h"
#include "quant/RunDir.h"

namespace qs::test {

// The message of the core::Error that f throws, or "" when it throws none.
inline std::string errorText(const std::function<void()> &f)
{
    try {
        f();
    } catch (const core::Error &e) {
        return e.what();
    }
    return {};
}

// A progress that cancels itself once `after` units have been advanced (advance() may be called from
// several threads).
class CancellingProgress final : public core::Progress
{
public:
    explicit CancellingProgress(double after)
        : m_after(after)
    { }
    void setTotal(double) override { }
    void advance(double a) override
    {
        m_done += a;
        if (m_done >= m_after)
            m_cancelled = true;
    }
    void message(std::string_view) override { }
    bool isCancelled() const override { return m_cancelled; }
    double done() const { return m_done; }

private:
    double m_after;
    std::atomic<double> m_done { 0.0 };
    std::atomic<bool> m_cancelled { false };
};

// A fresh, empty folder for a test's files: outputDir()/name, emptied if a previous run left it behind.
inline std::filesystem::path freshOutputDir(const std::string &name)
{
    const std::filesystem::path dir = std::filesystem::path(outputDir().toStdString()) / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

// Pipeline options calibrating on `samples` windows of `seqLen` tokens of the text at textPath, seed 0;
// everything else (cumulative error on, no evaluation) as PipelineOptions::defaults().
inline core::PipelineOptions calibrationOptions(const std::string &textPath, int samples, int seqLen)
{
    core::PipelineOptions o;
    o.calibrationText = textPath;
    o.samples = samples;
    o.seqLen = seqLen;
    o.seed = 0;
    return o;
}

// Runs the pipeline on model with plan, without callbacks or cancellation.
inline core::QuantRun quantize(
    const std::shared_ptr<const core::Model> &model, const core::Plan &plan, const core::PipelineOptions &options)
{
    core::PipelineCallbacks callbacks;
    core::NullProgress progress;
    return core::runQuantization(model, plan, options, callbacks, progress);
}

// The same with the plan as JSON text (specs/plan.md).
inline core::QuantRun quantize(
    const std::shared_ptr<const core::Model> &model, const std::string &planJson, const core::PipelineOptions &options)
{
    return quantize(model, core::Plan::fromJson(nlohmann::json::parse(planJson)), options);
}

// Writes run as a RUN_DIR at dir and returns dir.
inline std::filesystem::path writeRun(const core::QuantRun &run, const std::filesystem::path &dir)
{
    core::NullProgress progress;
    core::writeRunDir(run, dir.string(), progress);
    return dir;
}

} // namespace qs::test
