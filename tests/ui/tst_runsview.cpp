// Quantizing from the window: a plan with a bulk rule, two runs with live per-layer results, the
// comparison and the Pareto plot. Screenshot: test-output/runs.png.
#include <QApplication>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTest>
#include <QUndoStack>

#include "CalibrationDock.h"
#include "MainWindow.h"
#include "ModelSession.h"
#include "PlanDock.h"
#include "PlanModel.h"
#include "RunsModel.h"
#include "RunsView.h"
#include "Settings.h"
#include "TestData.h"
#include "plots/LayerErrorPlot.h"
#include "plots/ParetoPlot.h"
#include "plots/TrainingLossPlot.h"

using namespace qs;
using namespace qs::ui;

class TestRunsView : public QObject
{
    Q_OBJECT
private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("QuantScopeTest"));
        QCoreApplication::setApplicationName(QStringLiteral("tst_runsview"));
    }

    void quantizeTwiceAndCompare()
    {
        QS_REQUIRE_TESTDATA(modelPath, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(textPath, "text/tinystories_sample.txt");
        MainWindow w;
        w.resize(1400, 900);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        QSignalSpy opened(w.session(), &ModelSession::modelOpened);
        w.openPath(modelPath);
        QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 1, 10000);

        CalibrationDock *calib = w.calibrationDock();
        calib->setCalibrationText(textPath);
        calib->setCalibrationSize(8, 128);
        calib->setEvaluationText(textPath);
        calib->setEvaluationContext(128, 4);

        auto *planDock = w.findChild<PlanDock *>();
        QVERIFY(planDock);
        PlanModel *plan = planDock->planModel();
        QCOMPARE(plan->rowCount(), 35);
        core::MethodConfig gptq = core::MethodConfig::defaults("gptq");
        gptq.set("bits", int64_t(4));
        gptq.set("group_size", int64_t(32));
        QCOMPARE(plan->applyRule(QStringLiteral("*.mlp.down_proj"), gptq), 5);

        RunsModel *runs = w.runsModel();
        QSignalSpy finished(runs, &RunsModel::runFinished);
        QSignalSpy layerDone(runs, &RunsModel::layerDone);
        w.startQuantization();
        QTRY_COMPARE_WITH_TIMEOUT(finished.size(), 1, 120000);
        const auto first = runs->runs().at(0);
        QVERIFY2(first->state == RunsModel::State::Done, qPrintable(first->error));
        QCOMPARE(int(first->layers.size()), 35);
        QCOMPARE(layerDone.size(), 35); // results arrived one by one, live
        QVERIFY(first->result && first->result->evaluation);
        QCOMPARE(w.runsView()->livePlot()->barCount(), 35);
        int gptqLayers = 0;
        for (const auto &l : first->layers)
            gptqLayers += l.method == "gptq" ? 1 : 0;
        QCOMPARE(gptqLayers, 5);

        // Second run: everything 8-bit RTN (undoing the rule first shows undo reaches the plan).
        w.undoStack()->undo();
        QVERIFY(plan->setDataForRows([&] { QList<int> all; for (int r = 0; r < plan->rowCount(); ++r) all << r; return all; }(),
                                     PlanModel::BitsColumn, 8));
        w.startQuantization();
        QTRY_COMPARE_WITH_TIMEOUT(finished.size(), 2, 120000);
        const auto second = runs->runs().at(1);
        QVERIFY2(second->state == RunsModel::State::Done, qPrintable(second->error));
        QVERIFY(second->result->bitsPerWeight > first->result->bitsPerWeight);
        // 8-bit is closer to the original than the 4-bit mix.
        QVERIFY(second->result->evaluation->kldMean < first->result->evaluation->kldMean);

        w.runsView()->setCompare(first->id, second->id);
        QCOMPARE(w.runsView()->comparePlot()->barCount(), 70);
        QCOMPARE(runs->rowCount(), 2);
        // Both runs are evaluated; the Pareto front has at least the cheapest run.
        QVERIFY(!w.runsView()->paretoPlot()->front().empty());
        w.plotTabs()->setCurrentWidget(w.runsView());
        QTest::qWait(50);
        QVERIFY(w.grab().save(qs::test::outputDir() + QStringLiteral("/runs.png")));
    }

    // A training method (EfficientQAT, both phases) fills the live loss plot: one curve per block for
    // Block-AP and one for E2E-QP; a run without training hides it. Screenshot: test-output/runs_qat.png.
    void efficientQatLossCurves()
    {
        QS_REQUIRE_TESTDATA(modelPath, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(textPath, "text/tinystories_sample.txt");
        MainWindow w;
        w.resize(1400, 1000);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        QSignalSpy opened(w.session(), &ModelSession::modelOpened);
        w.openPath(modelPath);
        QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 1, 10000);
        CalibrationDock *calib = w.calibrationDock();
        calib->setCalibrationText(textPath);
        calib->setCalibrationSize(8, 64);
        calib->setEvaluationText(QString());

        auto *planDock = w.findChild<PlanDock *>();
        QVERIFY(planDock);
        core::MethodConfig qat = core::MethodConfig::defaults("efficientqat");
        qat.set("bits", int64_t(3));
        qat.set("group_size", int64_t(32));
        qat.set("block_ap_lr", 1e-3);
        qat.set("e2e_lr", 1e-3);
        const int applied = planDock->planModel()->applyRule(QStringLiteral("model.layers.*"), qat);
        QCOMPARE(applied, 35);

        RunsModel *runs = w.runsModel();
        QSignalSpy finished(runs, &RunsModel::runFinished);
        QSignalSpy losses(runs, &RunsModel::trainingLoss);
        w.startQuantization();
        QTRY_COMPARE_WITH_TIMEOUT(finished.size(), 1, 300000);
        const auto run = runs->runs().at(0);
        QVERIFY2(run->state == RunsModel::State::Done, qPrintable(run->error));
        QVERIFY(losses.size() > 10); // live, step by step
        int blockAp = 0, e2e = 0;
        for (const core::TrainingLossEvent &e : run->losses)
            (e.phase == "e2e_qp" ? e2e : blockAp) += 1;
        QVERIFY(blockAp > 0);
        QVERIFY(e2e > 0);
        QTRY_VERIFY(w.runsView()->lossPlot()->isVisible());
        QCOMPARE(w.runsView()->lossPlot()->curveCount(), 5 + 1); // stories260K has 5 blocks
        QVERIFY2(w.runsView()->lossPlot()->caption().contains(QStringLiteral("Block-AP")),
                 qPrintable(w.runsView()->lossPlot()->caption()));
        w.plotTabs()->setCurrentWidget(w.runsView());
        QTest::qWait(50);
        QVERIFY(w.grab().save(qs::test::outputDir() + QStringLiteral("/runs_qat.png")));
    }
};

QTEST_MAIN(TestRunsView)
#include "tst_runsview.moc"
