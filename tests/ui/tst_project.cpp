// File › Save/Open project: a session (stories260K, a plan edit, a run quantized from the window, a run
// from a RUN_DIR and one whose RUN_DIR has gone) saved to an HDF5 project and opened in a fresh window:
// model, plan, runs, statistics (not recomputed) and calibration settings come back, the title carries the
// project name and no '*', and an edit brings the '*' back. Screenshot: test-output/project.png.
#include <QAbstractButton>
#include <QApplication>
#include <QMessageBox>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableView>
#include <QTabWidget>
#include <QTest>
#include <QTimer>
#include <QUndoStack>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "CalibrationDock.h"
#include "JobRunner.h"
#include "MainWindow.h"
#include "ModelSession.h"
#include "PlanDock.h"
#include "PlanModel.h"
#include "ProjectSession.h"
#include "RunsModel.h"
#include "RunsView.h"
#include "Settings.h"
#include "TestData.h"
#include "common/Progress.h"
#include "export/ProjectH5.h"
#include "io/FormatRegistry.h"
#include "quant/Pipeline.h"
#include "quant/RunDir.h"
#include "stats/WeightStats.h"

using namespace qs;
using namespace qs::ui;
namespace fs = std::filesystem;

namespace {

bool waitForStats(MainWindow &w)
{
    return QTest::qWaitFor([&] { return w.session()->stats() != nullptr; }, 60000);
}

core::QuantRun quantizeInCore(const QString &model, const QString &text)
{
    core::PipelineOptions o;
    o.calibrationText = text.toStdString();
    o.samples = 4;
    o.seqLen = 32;
    o.cumulativeError = false;
    const core::Plan plan = core::Plan::fromJson(nlohmann::json::parse(R"({"default": {"method": "rtn", "bits": 8, "group_size": -1}})"));
    core::PipelineCallbacks cb;
    core::NullProgress progress;
    return core::runQuantization(core::openModel(model.toStdString()), plan, o, cb, progress);
}

} // namespace

class TestProject : public QObject
{
    Q_OBJECT
private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("QuantScopeTest"));
        QCoreApplication::setApplicationName(QStringLiteral("tst_project"));
        Settings().clearRecentFiles();
    }

    void saveAndOpenRestoresTheSession()
    {
        QS_REQUIRE_TESTDATA(modelPath, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(textPath, "text/tinystories_sample.txt");
        const QString dir = qs::test::outputDir() + QStringLiteral("/tst_project");
        QDir(dir).removeRecursively();
        QVERIFY(QDir().mkpath(dir));

        // Two runs made outside the window: one keeps its RUN_DIR, the other's RUN_DIR is deleted later.
        const core::QuantRun coreRun = quantizeInCore(modelPath, textPath);
        const QString keptDir = dir + QStringLiteral("/run-kept");
        const QString goneDir = dir + QStringLiteral("/run-gone");
        core::NullProgress progress;
        core::writeRunDir(coreRun, keptDir.toStdString(), progress);
        core::writeRunDir(coreRun, goneDir.toStdString(), progress);

        const QString projectPath = dir + QStringLiteral("/session.qsproj.h5");
        std::vector<PlanModel::Row> savedRows;
        std::vector<core::WeightStats> savedStats;
        std::vector<uint8_t> savedCodes;
        std::string savedLayer;
        {
            MainWindow w;
            w.resize(1280, 800);
            w.show();
            QVERIFY(QTest::qWaitForWindowExposed(&w));
            QSignalSpy opened(w.session(), &ModelSession::modelOpened);
            w.openPath(modelPath);
            QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 1, 20000);
            QVERIFY(waitForStats(w));
            QVERIFY(!w.windowTitle().contains(QLatin1Char('*')));

            CalibrationDock *calib = w.calibrationDock();
            calib->setCalibrationText(textPath);
            calib->setCalibrationSize(4, 32);
            calib->setCalibrationSeed(7);
            calib->setEvaluationText(QString());
            calib->setEvaluationContext(96, 3);
            calib->setEvaluationProtocol(QStringLiteral("gptq"));

            auto *planDock = w.findChild<PlanDock *>();
            PlanModel *plan = planDock->planModel();
            core::MethodConfig gptq = core::MethodConfig::defaults("gptq");
            gptq.set("bits", int64_t(4));
            gptq.set("group_size", int64_t(32));
            QCOMPARE(plan->applyRule(QStringLiteral("*.mlp.down_proj"), gptq), 5);
            QVERIFY(plan->setDataForRows({ 0 }, PlanModel::QuantizeColumn, false));
            QVERIFY2(w.windowTitle().contains(QLatin1Char('*')), qPrintable(w.windowTitle()));

            // A run from the window (kept only in memory: its tensors go into the project).
            RunsModel *runs = w.runsModel();
            QSignalSpy finished(runs, &RunsModel::runFinished);
            w.startQuantization();
            QTRY_COMPARE_WITH_TIMEOUT(finished.size(), 1, 120000);
            QVERIFY2(runs->runs().at(0)->state == RunsModel::State::Done, qPrintable(runs->runs().at(0)->error));
            runs->addFinishedRun(QStringLiteral("from disk"), std::make_shared<const core::QuantRun>(coreRun), keptDir);
            runs->addFinishedRun(QStringLiteral("gone"), std::make_shared<const core::QuantRun>(coreRun), goneDir);
            QCOMPARE(runs->rowCount(), 3);
            w.runsView()->selectRun(runs->runs().at(1)->id);
            w.plotTabs()->setCurrentWidget(w.runsView());

            QSignalSpy saved(w.project(), &ProjectSession::saved);
            QSignalSpy failed(w.project(), &ProjectSession::saveFailed);
            w.project()->save(projectPath);
            QTRY_COMPARE_WITH_TIMEOUT(saved.size() + failed.size(), 1, 60000);
            QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
            QVERIFY(!w.project()->isModified());
            QVERIFY2(!w.windowTitle().contains(QLatin1Char('*')), qPrintable(w.windowTitle()));
            QVERIFY2(w.windowTitle().startsWith(QStringLiteral("session.qsproj.h5")), qPrintable(w.windowTitle()));
            QVERIFY(Settings().recentFiles().contains(projectPath));

            savedRows = plan->rows();
            savedStats = *w.session()->stats();
            savedCodes = runs->runs().at(0)->result->tensors.at(3).codes;
            savedLayer = runs->runs().at(0)->result->tensors.at(3).name;
        }
        QVERIFY(fs::remove_all(goneDir.toStdString()) > 0);
        {
            // Other values in the settings, so only the project can bring the saved ones back.
            Settings reset;
            reset.setCalibrationText(QString());
            reset.setCalibrationSamples(32);
            reset.setCalibrationSeqLen(256);
            reset.setCalibrationSeed(0);
            reset.setEvalContext(512);
            reset.setEvalMaxChunks(0);
            reset.setEvalProtocol(QStringLiteral("llamacpp"));
        }

        MainWindow w2;
        w2.resize(1400, 900);
        w2.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w2));
        QStringList jobTitles;
        connect(w2.jobRunner(), &JobRunner::started, this, [&jobTitles](JobId, const QString &t) { jobTitles << t; });
        QSignalSpy opened(w2.project(), &ProjectSession::opened);
        QSignalSpy openFailed(w2.project(), &ProjectSession::openFailed);
        w2.openPath(projectPath); // the same path a drop or the recent-files menu takes
        QTRY_COMPARE_WITH_TIMEOUT(opened.size() + openFailed.size(), 1, 60000);
        QVERIFY2(openFailed.isEmpty(), openFailed.isEmpty() ? "" : qPrintable(openFailed.first().at(1).toString()));

        // Model, plan (undo stack empty), statistics (restored, not recomputed).
        QCOMPARE(w2.session()->modelPath(), modelPath);
        auto *plan2 = w2.findChild<PlanDock *>()->planModel();
        QVERIFY(plan2->rows() == savedRows);
        QCOMPARE(w2.undoStack()->count(), 0);
        QVERIFY(w2.session()->stats());
        QCOMPARE(w2.session()->stats()->size(), savedStats.size());
        for (size_t i = 0; i < savedStats.size(); ++i) {
            QCOMPARE(w2.session()->stats()->at(i).name, savedStats[i].name);
            QCOMPARE(w2.session()->stats()->at(i).linearHistogram.counts, savedStats[i].linearHistogram.counts);
            QCOMPARE(w2.session()->stats()->at(i).colAbsMax, savedStats[i].colAbsMax);
        }
        QVERIFY2(jobTitles.filter(QStringLiteral("Weight statistics")).isEmpty(), qPrintable(jobTitles.join(QStringLiteral(", "))));

        // Calibration settings.
        Settings s;
        QCOMPARE(s.calibrationText(), textPath);
        QCOMPARE(s.calibrationSamples(), 4);
        QCOMPARE(s.calibrationSeqLen(), 32);
        QCOMPARE(s.calibrationSeed(), 7);
        QCOMPARE(s.evalContext(), 96);
        QCOMPARE(s.evalMaxChunks(), 3);
        QCOMPARE(s.evalProtocol(), QStringLiteral("gptq"));

        // Runs: the window's run with its tensors, the RUN_DIR re-read, the missing one marked.
        RunsModel *runs2 = w2.runsModel();
        QCOMPARE(runs2->rowCount(), 3);
        const auto first = runs2->runs().at(0);
        QCOMPARE(first->state, RunsModel::State::Done);
        QCOMPARE(int(first->layers.size()), 34); // one layer skipped in the plan
        QVERIFY(first->result->findTensor(savedLayer));
        QVERIFY(first->result->findTensor(savedLayer)->codes == savedCodes);
        QVERIFY(!first->runDirMissing);
        const auto kept = runs2->runs().at(1);
        QCOMPARE(kept->name, QStringLiteral("from disk"));
        QCOMPARE(kept->runDir, keptDir);
        QVERIFY(!kept->runDirMissing);
        QCOMPARE(kept->result->tensors.size(), coreRun.tensors.size());
        const auto gone = runs2->runs().at(2);
        QVERIFY(gone->runDirMissing);
        QCOMPARE(int(gone->layers.size()), int(coreRun.layers.size()));
        QVERIFY(runs2->data(runs2->index(2, RunsModel::StateColumn), Qt::DisplayRole).toString().contains(QStringLiteral("missing run dir")));

        // UI state: the Runs tab with the second run selected.
        QCOMPARE(w2.plotTabs()->currentWidget(), static_cast<QWidget *>(w2.runsView()));
        QCOMPARE(w2.runsView()->table()->currentIndex().row(), 1);

        // Title: project name, no '*'; an edit brings it back, undo removes it again.
        QVERIFY2(!w2.windowTitle().contains(QLatin1Char('*')), qPrintable(w2.windowTitle()));
        QVERIFY2(w2.windowTitle().contains(QStringLiteral("session.qsproj.h5")), qPrintable(w2.windowTitle()));
        QVERIFY(plan2->setDataForRows({ 1 }, PlanModel::BitsColumn, 8));
        QVERIFY2(w2.windowTitle().contains(QLatin1Char('*')), qPrintable(w2.windowTitle()));
        w2.undoStack()->undo();
        QVERIFY2(!w2.windowTitle().contains(QLatin1Char('*')), qPrintable(w2.windowTitle()));

        QTest::qWait(50);
        QVERIFY(w2.grab().save(qs::test::outputDir() + QStringLiteral("/project.png")));

        // Closing with unsaved changes asks Save/Discard/Cancel: Cancel keeps the window, Discard closes.
        QVERIFY(plan2->setDataForRows({ 1 }, PlanModel::BitsColumn, 8));
        int asked = 0;
        QMessageBox::StandardButton answer = QMessageBox::Cancel;
        QTimer clicker;
        connect(&clicker, &QTimer::timeout, this, [&] {
            if (auto *box = qobject_cast<QMessageBox *>(QApplication::activeModalWidget())) {
                ++asked;
                box->button(answer)->click();
            }
        });
        clicker.start(20);
        QVERIFY(!w2.close());
        QCOMPARE(asked, 1);
        QVERIFY(w2.isVisible());
        answer = QMessageBox::Discard;
        QVERIFY(w2.close());
        QCOMPARE(asked, 2);
    }

    void openingABrokenProjectSaysWhy()
    {
        const QString path = qs::test::outputDir() + QStringLiteral("/tst_project-broken.qsproj.h5");
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("not a project");
        f.close();
        MainWindow w;
        QSignalSpy failed(w.project(), &ProjectSession::openFailed);
        QTimer closer;
        connect(&closer, &QTimer::timeout, this, [] {
            if (QWidget *m = QApplication::activeModalWidget())
                m->close();
        });
        closer.start(20);
        w.openPath(path);
        QTRY_COMPARE_WITH_TIMEOUT(failed.size(), 1, 10000);
        const QString error = failed.first().at(1).toString();
        QVERIFY2(error.startsWith(path + QStringLiteral(":")) && error.contains(QStringLiteral("not an HDF5 file")),
            qPrintable(error));
        QVERIFY(!w.session()->model());
    }
};

QTEST_MAIN(TestProject)
#include "tst_project.moc"
