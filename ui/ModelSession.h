#pragma once
// The open model and what was computed from it. Opening and statistics run as jobs; results arrive as
// std::shared_ptr<const ...> values and are announced by signals. Widgets read from here; they never
// touch files or tensors themselves.

#include <QObject>
#include <QList>
#include <QString>

#include <memory>
#include <vector>

#include "JobRunner.h"

namespace qs::core {
class Model;
struct WeightStats;
struct CalibrationRunResult;
struct CalibrationRunOptions;
struct InputActivationStats;
struct PerplexityResult;
struct EvalOptions;
} // namespace qs::core

namespace qs::ui {

using StatsList = std::vector<core::WeightStats>; // aligned with Model::tensors

class ModelSession : public QObject
{
    Q_OBJECT
public:
    explicit ModelSession(JobRunner *runner, QObject *parent = nullptr);

    // Opens a model folder or file in the background; replaces the current model when it succeeds and
    // then computes weight statistics for every tensor (another job). With precomputed statistics (from a
    // project) that match the opened model tensor for tensor, those are used instead of computing them,
    // and their outlier sigma and bin count become the session's.
    void openModel(const QString &path, std::shared_ptr<const StatsList> precomputed = nullptr);
    // Generates the synthetic demo model into the cache folder (once) and opens it.
    void openDemoModel();
    static QString demoModelPath();

    // Outliers are |x - mean| > sigma·σ; changing it recomputes the statistics.
    double outlierSigma() const { return m_outlierSigma; }
    void setOutlierSigma(double sigma);
    int histogramBins() const { return m_bins; }
    void setHistogramBins(int bins);

    // Runs calibration text through the model and keeps the activation statistics (a job).
    void runCalibration(const QString &textPath, const core::CalibrationRunOptions &options);
    std::shared_ptr<const core::CalibrationRunResult> calibration() const { return m_calibration; }
    // Activation statistics of the input of a linear tensor (by model tensor index); null without them.
    const core::InputActivationStats *activationsFor(int tensorIndex) const;

    // Perplexity of the open model on a text (a job); results accumulate in evaluations().
    void evaluate(const QString &textPath, const core::EvalOptions &options);
    struct Evaluation
    {
        QString textPath;
        QString label; // which model
        std::shared_ptr<const core::PerplexityResult> result;
        double seconds = 0.0;
    };
    const QList<Evaluation> &evaluations() const { return m_evaluations; }

    std::shared_ptr<const core::Model> model() const { return m_model; }
    std::shared_ptr<const StatsList> stats() const { return m_stats; } // null until computed
    const core::WeightStats *statsFor(int tensorIndex) const;
    QString modelPath() const { return m_path; }
    JobRunner *runner() const { return m_runner; }

Q_SIGNALS:
    void modelOpened(const QString &path);
    void openFailed(const QString &path, const QString &error);
    void statsChanged();
    void calibrationChanged();
    void evaluationsChanged();
    void outlierSigmaChanged(double sigma);
    void message(const QString &text);
    void warning(const QString &text);

private:
    void computeStats();

    JobRunner *m_runner;
    std::shared_ptr<const core::Model> m_model;
    std::shared_ptr<const StatsList> m_stats;
    std::shared_ptr<const core::CalibrationRunResult> m_calibration;
    QList<Evaluation> m_evaluations;
    QString m_path;
    double m_outlierSigma = 6.0;
    int m_bins = 256;
};

} // namespace qs::ui
