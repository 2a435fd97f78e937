#include "ReportWriter.h"

#include <QTimer>

#include "common/Error.h"
#include "model/Model.h"

namespace qs::ui {

std::vector<core::ReportFile> reportFiles(
    const core::ReportInput &input, const std::vector<RenderedChart> &charts, const core::ReportOptions &options)
{
    std::vector<core::ReportFile> files;
    std::vector<core::ReportChart> planned;
    for (const RenderedChart &c : charts) {
        for (core::ReportFile &f : encodeReportChart(c, options.dpi))
            files.push_back(std::move(f));
        planned.push_back(c.chart);
    }
    for (core::ReportFile &f : core::reportTextFiles(input, planned, options))
        files.push_back(std::move(f));
    return files;
}

std::vector<std::string> writeReport(const core::ReportInput &input, const core::ReportOptions &options,
    const std::string &dir, core::Progress &progress)
{
    options.validate();
    core::checkReportTarget(dir);
    const std::vector<core::ReportChart> charts = core::planReportCharts(input);
    std::vector<RenderedChart> rendered;
    const bool anyChart = options.png || options.svg || options.pdf;
    if (anyChart) {
        progress.setTotal(double(charts.size()));
        for (const core::ReportChart &c : charts) {
            progress.throwIfCancelled();
            progress.message("drawing " + c.stem);
            rendered.push_back(renderReportChart(input, c, options));
            progress.advance(1);
        }
    }
    const std::vector<core::ReportFile> files = reportFiles(input, rendered, options);
    core::writeReportFolder(dir, files, progress);
    std::vector<std::string> paths;
    for (const core::ReportFile &f : files)
        paths.push_back(f.path);
    return paths;
}

ReportExporter::ReportExporter(JobRunner *runner, QObject *parent) : QObject(parent), m_runner(runner)
{
    connect(m_runner, &JobRunner::progress, this, [this](JobId id, double fraction, const QString &message) {
        if (id != m_job || m_stage == Stage::Idle)
            return;
        // Loading takes the first 40 %, drawing the next 30 %, writing the rest.
        const double base = m_stage == Stage::Loading ? 0.0 : 0.7, span = m_stage == Stage::Loading ? 0.4 : 0.3;
        Q_EMIT progress(base + span * fraction, message);
    });
    connect(m_runner, &JobRunner::cancelled, this, [this](JobId id) {
        if (id != m_job || m_stage == Stage::Idle)
            return;
        end();
        Q_EMIT cancelled();
    });
}

ReportExporter::~ReportExporter()
{
    if (m_job && m_runner)
        m_runner->cancel(m_job);
}

bool ReportExporter::start(Request request)
{
    if (isRunning())
        return false;
    m_request = std::move(request);
    m_cancelRequested = false;
    m_rendered.clear();
    m_charts.clear();
    m_input.reset();
    m_stage = Stage::Loading;
    // Copies for the job: the request stays here, the job may outlive nothing it captures.
    auto runs = m_request.runs;
    auto dirs = m_request.runDirs;
    auto model = m_request.model;
    const core::ReportInputOptions inputOptions = m_request.input;
    const core::ReportOptions options = m_request.options;
    const std::string dir = m_request.dir;
    m_job = m_runner->run<core::ReportInput>(
        tr("Report: %1").arg(QString::fromStdString(dir)), QString(),
        [runs, dirs, model, inputOptions, options, dir](core::Progress &progress) {
            options.validate();
            core::checkReportTarget(dir); // a bad folder fails before any work
            return core::loadReportInput(runs, dirs, model.get(), inputOptions, progress);
        },
        [this](std::shared_ptr<const core::ReportInput> input) { onLoaded(std::move(input)); },
        [this](const QString &error) {
            end();
            Q_EMIT failed(error);
        });
    return true;
}

void ReportExporter::cancel()
{
    if (m_stage == Stage::Idle)
        return;
    m_cancelRequested = true;
    if (m_stage != Stage::Drawing && m_job)
        m_runner->cancel(m_job); // the runner's cancelled signal ends the export
}

void ReportExporter::end()
{
    m_stage = Stage::Idle;
    m_job = 0;
    m_input.reset();
    m_rendered.clear();
    m_charts.clear();
}

void ReportExporter::onLoaded(std::shared_ptr<const core::ReportInput> input)
{
    m_job = 0;
    m_input = std::move(input);
    m_stage = Stage::Drawing;
    const core::ReportOptions &o = m_request.options;
    if (o.png || o.svg || o.pdf)
        m_charts = core::planReportCharts(*m_input);
    QTimer::singleShot(0, this, &ReportExporter::drawNext);
}

void ReportExporter::drawNext()
{
    if (m_stage != Stage::Drawing)
        return;
    if (m_cancelRequested) {
        end();
        Q_EMIT cancelled();
        return;
    }
    if (m_rendered.size() == m_charts.size()) {
        startWriting();
        return;
    }
    const core::ReportChart &chart = m_charts[m_rendered.size()];
    Q_EMIT progress(0.4 + 0.3 * double(m_rendered.size()) / double(m_charts.size()),
                    tr("drawing %1").arg(QString::fromStdString(chart.stem)));
    try {
        m_rendered.push_back(renderReportChart(*m_input, chart, m_request.options));
    } catch (const core::Error &e) {
        end();
        Q_EMIT failed(QString::fromUtf8(e.what()));
        return;
    }
    QTimer::singleShot(0, this, &ReportExporter::drawNext);
}

void ReportExporter::startWriting()
{
    m_stage = Stage::Writing;
    auto input = m_input;
    auto rendered = std::make_shared<const std::vector<RenderedChart>>(std::move(m_rendered));
    m_rendered.clear();
    const core::ReportOptions options = m_request.options;
    const std::string dir = m_request.dir;
    m_job = m_runner->run<std::vector<std::string>>(
        tr("Report: %1").arg(QString::fromStdString(dir)), QString(),
        [input, rendered, options, dir](core::Progress &progress) {
            const std::vector<core::ReportFile> files = reportFiles(*input, *rendered, options);
            core::writeReportFolder(dir, files, progress);
            std::vector<std::string> paths;
            for (const core::ReportFile &f : files)
                paths.push_back(f.path);
            return paths;
        },
        [this, dir](std::shared_ptr<const std::vector<std::string>> paths) {
            QStringList list;
            for (const std::string &p : *paths)
                list << QString::fromStdString(p);
            end();
            Q_EMIT finished(QString::fromStdString(dir), list);
        },
        [this](const QString &error) {
            end();
            Q_EMIT failed(error);
        });
}

} // namespace qs::ui
