#include "ModelSession.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QStandardPaths>

#include "eval/CalibrationRun.h"
#include "eval/Evaluate.h"
#include "eval/TextSource.h"
#include "io/FormatRegistry.h"
#include "model/ActivationObserver.h"
#include "model/Forward.h"
#include "model/DemoModel.h"
#include "stats/WeightStats.h"

namespace qs::ui {

ModelSession::ModelSession(JobRunner *runner, QObject *parent) : QObject(parent), m_runner(runner) {}

void ModelSession::openModel(const QString &path, std::shared_ptr<const StatsList> precomputed)
{
    const std::string p = path.toStdString();
    m_runner->run<std::shared_ptr<const core::Model>>(
        tr("Open %1").arg(QFileInfo(path).fileName()), QStringLiteral("open-model"),
        [p](core::Progress &progress) -> std::shared_ptr<const core::Model> {
            progress.message("reading headers");
            return core::openModel(p);
        },
        [this, path, precomputed](std::shared_ptr<const std::shared_ptr<const core::Model>> result) {
            m_model = *result;
            m_stats.reset();
            m_calibration.reset();
            m_evaluations.clear();
            Q_EMIT calibrationChanged();
            Q_EMIT evaluationsChanged();
            m_path = path;
            for (const std::string &w : m_model->warnings)
                Q_EMIT warning(QString::fromStdString(w));
            Q_EMIT message(tr("Opened %1 (%2, %3 tensors, %L4 parameters)%5")
                               .arg(path, QString::fromStdString(m_model->format))
                               .arg(m_model->tensors.size())
                               .arg(m_model->parameterCount())
                               .arg(m_model->hparams.synthetic ? tr(" \u2014 synthetic demo model") : QString()));
            // Statistics restored from a project are used when they describe exactly these tensors.
            bool reuse = precomputed && !precomputed->empty() && precomputed->size() == m_model->tensors.size()
                         && !precomputed->front().linearHistogram.counts.empty();
            for (size_t i = 0; reuse && i < precomputed->size(); ++i)
                reuse = (*precomputed)[i].name == m_model->tensors[i].name
                        && (*precomputed)[i].outlierSigma == precomputed->front().outlierSigma
                        && (*precomputed)[i].linearHistogram.counts.size() == precomputed->front().linearHistogram.counts.size();
            if (reuse) {
                m_stats = precomputed;
                m_bins = int(precomputed->front().linearHistogram.counts.size());
                if (m_outlierSigma != precomputed->front().outlierSigma) {
                    m_outlierSigma = precomputed->front().outlierSigma;
                    Q_EMIT outlierSigmaChanged(m_outlierSigma);
                }
            }
            Q_EMIT modelOpened(path);
            Q_EMIT statsChanged();
            if (!reuse)
                computeStats();
        },
        [this, path](const QString &error) { Q_EMIT openFailed(path, error); });
}

QString ModelSession::demoModelPath()
{
    return QStandardPaths::writableLocation(QStandardPaths::CacheLocation) + QStringLiteral("/demo-small-f16");
}

void ModelSession::openDemoModel()
{
    const QString path = demoModelPath();
    const std::string p = path.toStdString();
    m_runner->run<bool>(
        tr("Generate demo model"), QStringLiteral("open-model"),
        [p](core::Progress &progress) {
            if (core::isDemoModelFolder(p))
                return true;
            core::DemoOptions options;
            options.preset = "small";
            options.dtype = "f16";
            progress.message("writing synthetic weights");
            core::writeDemoModel(p, options, progress);
            return true;
        },
        [this, path](std::shared_ptr<const bool>) { openModel(path); },
        [this, path](const QString &error) { Q_EMIT openFailed(path, error); });
}

void ModelSession::setOutlierSigma(double sigma)
{
    if (sigma == m_outlierSigma)
        return;
    m_outlierSigma = sigma;
    Q_EMIT outlierSigmaChanged(sigma);
    if (m_model)
        computeStats();
}

void ModelSession::setHistogramBins(int bins)
{
    if (bins == m_bins)
        return;
    m_bins = bins;
    if (m_model)
        computeStats();
}

const core::WeightStats *ModelSession::statsFor(int tensorIndex) const
{
    if (!m_stats || tensorIndex < 0 || size_t(tensorIndex) >= m_stats->size())
        return nullptr;
    return &m_stats->at(size_t(tensorIndex));
}

void ModelSession::runCalibration(const QString &textPath, const core::CalibrationRunOptions &options)
{
    if (!m_model)
        return;
    const std::shared_ptr<const core::Model> model = m_model;
    const std::string text = textPath.toStdString();
    m_runner->run<core::CalibrationRunResult>(
        tr("Calibration (%1 \u00d7 %2 tokens)").arg(options.samples).arg(options.seqLen), QStringLiteral("calibration"),
        [model, text, options](core::Progress &progress) { return core::runCalibration(model, text, options, progress); },
        [this, model](std::shared_ptr<const core::CalibrationRunResult> result) {
            if (model != m_model)
                return;
            m_calibration = std::move(result);
            Q_EMIT message(tr("Calibration done: %1 samples, %2 tokens in %3 s")
                               .arg(m_calibration->calibration.samples.size())
                               .arg(m_calibration->calibration.totalTokens())
                               .arg(m_calibration->seconds, 0, 'f', 1));
            Q_EMIT calibrationChanged();
        });
}

const core::InputActivationStats *ModelSession::activationsFor(int tensorIndex) const
{
    if (!m_model || !m_calibration || tensorIndex < 0 || size_t(tensorIndex) >= m_model->tensors.size())
        return nullptr;
    const core::Tensor &t = m_model->tensors[size_t(tensorIndex)];
    if (!core::isLinearRole(t.role))
        return nullptr;
    const core::LinearInput input = core::linearInputOf(t.role);
    const int block = t.role == core::TensorRole::LmHead ? -1 : t.block;
    for (const core::InputActivationStats &s : m_calibration->stats)
        if (s.block == block && s.input == input)
            return &s;
    return nullptr;
}

void ModelSession::evaluate(const QString &textPath, const core::EvalOptions &options)
{
    if (!m_model)
        return;
    const std::shared_ptr<const core::Model> model = m_model;
    const std::string text = textPath.toStdString();
    struct Outcome
    {
        core::PerplexityResult result;
        double seconds = 0.0;
    };
    m_runner->run<Outcome>(
        tr("Perplexity (%1, ctx %2)").arg(QString::fromLatin1(core::evalProtocolName(options.protocol))).arg(options.ctx),
        QStringLiteral("evaluate"),
        [model, text, options](core::Progress &progress) {
            QElapsedTimer clock;
            clock.start();
            const core::TokenizedText tokens = core::tokenizeTextFile(*model, text, progress);
            core::ForwardEngine engine(model);
            Outcome o;
            o.result = core::evaluatePerplexity(engine, tokens.tokens, options, progress);
            o.seconds = double(clock.elapsed()) / 1000.0;
            return o;
        },
        [this, model, textPath](std::shared_ptr<const Outcome> o) {
            if (model != m_model)
                return;
            Evaluation e;
            e.textPath = textPath;
            e.label = tr("original");
            e.result = std::make_shared<const core::PerplexityResult>(o->result);
            e.seconds = o->seconds;
            m_evaluations.append(e);
            Q_EMIT message(tr("Perplexity %1 (%2, ctx %3, %4 tokens scored)")
                               .arg(o->result.perplexity, 0, 'f', 4)
                               .arg(QString::fromStdString(o->result.protocol))
                               .arg(o->result.ctx)
                               .arg(o->result.tokensScored));
            Q_EMIT evaluationsChanged();
        });
}

void ModelSession::computeStats()
{
    core::StatsOptions options;
    options.outlierSigma = m_outlierSigma;
    options.histogramBins = m_bins;
    const std::shared_ptr<const core::Model> model = m_model;
    m_runner->run<StatsList>(
        tr("Weight statistics (%1\u03c3)").arg(m_outlierSigma), QStringLiteral("weight-stats"),
        [model, options](core::Progress &progress) {
            progress.message("weight statistics");
            return core::computeModelStats(*model, options, progress);
        },
        [this, model](std::shared_ptr<const StatsList> stats) {
            if (model != m_model)
                return; // a newer model was opened meanwhile
            m_stats = std::move(stats);
            for (const core::WeightStats &s : *m_stats)
                if (s.nanCount || s.infCount)
                    Q_EMIT warning(tr("tensor '%1': %2 NaN and %3 infinite values")
                                       .arg(QString::fromStdString(s.name))
                                       .arg(s.nanCount)
                                       .arg(s.infCount));
            Q_EMIT statsChanged();
        });
}

} // namespace qs::ui
