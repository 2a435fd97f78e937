#pragma once
// Writes a report folder (core/report/ReportFolder.h): charts drawn by ReportCharts, tables, README.md,
// report.json, all into a temporary folder beside the target that is renamed when complete.
//
// writeReport() does it all in the calling thread, which must be the GUI thread (the charts are drawn
// with QCustomPlot): `quantscope-cli report` and the tests use it. ReportExporter is the GUI's version:
// reading runs and computing histograms (job), drawing the charts (GUI thread, one per event-loop turn so
// the window stays responsive), compressing and writing the files (job); one of finished / failed /
// cancelled at the end, and nothing written unless finished.

#include <QObject>
#include <QStringList>

#include <memory>
#include <string>
#include <vector>

#include "JobRunner.h"
#include "report/ReportCharts.h"
#include "report/ReportFolder.h"

namespace qs::core {
class Model;
}

namespace qs::ui {

// Every file of the report: the encoded charts, then the tables, README.md and report.json. Any thread.
std::vector<core::ReportFile> reportFiles(
    const core::ReportInput &input, const std::vector<RenderedChart> &charts, const core::ReportOptions &options);

// Draws every chart of planReportCharts(input) and writes dir. Progress: one unit per chart, then the
// folder's bytes; cancellable. Returns the files written, relative to dir. Throws core::Error (naming dir
// and the reason) or core::Cancelled; neither leaves anything behind.
std::vector<std::string> writeReport(const core::ReportInput &input, const core::ReportOptions &options,
    const std::string &dir, core::Progress &progress);

class ReportExporter : public QObject
{
    Q_OBJECT
public:
    struct Request
    {
        std::vector<core::ReportRun> runs; // in-memory runs (the GUI's runs list)
        std::vector<std::string> runDirs; // RUN_DIRs to read as well
        std::shared_ptr<const core::Model> model; // histograms from it; null: the first run's original
        core::ReportInputOptions input = core::ReportInputOptions::defaults();
        core::ReportOptions options = core::ReportOptions::defaults();
        std::string dir;
    };

    explicit ReportExporter(JobRunner *runner, QObject *parent = nullptr);
    ~ReportExporter() override;

    // False (and nothing started) while an export is running.
    bool start(Request request);
    void cancel();
    bool isRunning() const { return m_stage != Stage::Idle; }

Q_SIGNALS:
    void progress(double fraction, const QString &message);
    void finished(const QString &dir, const QStringList &files);
    void failed(const QString &error);
    void cancelled();

private:
    enum class Stage { Idle, Loading, Drawing, Writing };
    void onLoaded(std::shared_ptr<const core::ReportInput> input);
    void drawNext();
    void startWriting();
    void end();

    JobRunner *m_runner;
    Request m_request;
    Stage m_stage = Stage::Idle;
    JobId m_job = 0;
    bool m_cancelRequested = false;
    std::shared_ptr<const core::ReportInput> m_input;
    std::vector<core::ReportChart> m_charts;
    std::vector<RenderedChart> m_rendered;
};

} // namespace qs::ui
