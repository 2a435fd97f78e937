// The "Compare methods" tab on stories260K: reached from the window for a layer, the comparison runs as a
// job with the calibration settings of the dock, the results table marks the best configuration, the plots
// show one series per configuration, "Use for this layer in the plan" is one undo step, editing the
// configurations follows the registry, and a running comparison can be cancelled.
// Screenshot: test-output/layer_compare.png.
#include <QAbstractItemModelTester>
#include <QAction>
#include <QComboBox>
#include <QMenuBar>
#include <QPushButton>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableView>
#include <QTest>
#include <QUndoStack>

#include "CalibrationDock.h"
#include "CompareConfigModel.h"
#include "CompareResultsModel.h"
#include "LayerCompareView.h"
#include "MainWindow.h"
#include "LayerView.h"
#include "ModelDock.h"
#include "ModelSession.h"
#include "PlanDock.h"
#include "PlanModel.h"
#include "TestData.h"
#include "model/Model.h"
#include "plots/MethodBarPlot.h"
#include "plots/OverlayHistogramPlot.h"

using namespace qs;
using namespace qs::ui;

namespace {

int tensorIndex(const core::Model &m, const std::string &name)
{
    for (size_t i = 0; i < m.tensors.size(); ++i)
        if (m.tensors[i].name == name)
            return int(i);
    return -1;
}

const PlanModel::Row *planRow(const PlanModel *plan, const std::string &name)
{
    for (const PlanModel::Row &r : plan->rows())
        if (r.name == name)
            return &r;
    return nullptr;
}

QAction *findRunAction(QMenuBar *bar, const QString &prefix)
{
    for (QAction *menu : bar->actions()) {
        if (menu->text().remove(QLatin1Char('&')) != QLatin1String("Run"))
            continue;
        for (QAction *a : menu->menu()->actions())
            if (a->text().remove(QLatin1Char('&')).startsWith(prefix))
                return a;
    }
    return nullptr;
}

} // namespace

class TestLayerCompareView : public QObject
{
    Q_OBJECT
private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("QuantScopeTest"));
        QCoreApplication::setApplicationName(QStringLiteral("tst_layercompare_view"));
    }

    void configurationsFollowTheRegistry()
    {
        CompareConfigModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        QCOMPARE(model.rowCount(), 4);
        QCOMPARE(model.index(0, CompareConfigModel::MethodColumn).data().toString(), QStringLiteral("RTN"));
        QCOMPARE(model.index(1, CompareConfigModel::MethodColumn).data().toString(), QStringLiteral("GPTQ"));
        QCOMPARE(model.index(2, CompareConfigModel::MethodColumn).data().toString(), QStringLiteral("AWQ"));
        QCOMPARE(model.index(3, CompareConfigModel::GroupColumn).data().toString(), QStringLiteral("per channel"));
        QCOMPARE(model.index(3, CompareConfigModel::BitsColumn).data().toInt(), 8);
        // Per tensor is offered for RTN but not for GPTQ (its validation refuses it).
        QVERIFY(model.index(0, CompareConfigModel::GroupColumn).data(CompareConfigModel::ChoicesRole).toStringList().contains(QStringLiteral("0")));
        QVERIFY(!model.index(1, CompareConfigModel::GroupColumn).data(CompareConfigModel::ChoicesRole).toStringList().contains(QStringLiteral("0")));
        QVERIFY(!model.setData(model.index(1, CompareConfigModel::GroupColumn), 0));
        QVERIFY(!model.lastError().isEmpty());
        // SmoothQuant supports 4..8 bits only.
        QVERIFY(model.setData(model.index(0, CompareConfigModel::MethodColumn), QStringLiteral("smoothquant")));
        QCOMPARE(model.configs()[0].method(), std::string("smoothquant"));
        const QStringList bits = model.index(0, CompareConfigModel::BitsColumn).data(CompareConfigModel::ChoicesRole).toStringList();
        QCOMPARE(bits.first(), QStringLiteral("4"));
        QVERIFY(!model.setData(model.index(0, CompareConfigModel::BitsColumn), 3));
        // Changing the method keeps bits and group where the new method takes them.
        QVERIFY(model.setData(model.index(0, CompareConfigModel::MethodColumn), QStringLiteral("gptq")));
        QCOMPARE(model.configs()[0].getInt("bits"), int64_t(4));
        QCOMPARE(model.configs()[0].getInt("group_size"), int64_t(128));
        QVERIFY(model.setData(model.index(0, CompareConfigModel::SymmetricColumn), Qt::Checked, Qt::CheckStateRole));
        QVERIFY(model.configs()[0].getBool("symmetric"));
        model.addConfig(core::MethodConfig::defaults("zeroquant"));
        QCOMPARE(model.rowCount(), 5);
        QVERIFY(model.removeRows(0, 2));
        QCOMPARE(model.rowCount(), 3);
        model.setConfigs(CompareConfigModel::defaultConfigs());
        QCOMPARE(model.rowCount(), 4);
    }

    void compareUseInPlanAndUndo()
    {
        QS_REQUIRE_TESTDATA(modelPath, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(textPath, "text/tinystories_sample.txt");
        MainWindow w;
        w.resize(1700, 1000);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        QSignalSpy opened(w.session(), &ModelSession::modelOpened);
        w.openPath(modelPath);
        QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 1, 10000);
        w.calibrationDock()->setCalibrationText(textPath);
        w.calibrationDock()->setCalibrationSize(8, 64);

        LayerCompareView *view = w.compareView();
        QVERIFY(view);
        QAbstractItemModelTester configTester(view->configModel(), QAbstractItemModelTester::FailureReportingMode::QtTest);
        QAbstractItemModelTester resultTester(view->resultsModel(), QAbstractItemModelTester::FailureReportingMode::QtTest);
        QAction *action = findRunAction(w.menuBar(), QStringLiteral("Compare methods"));
        QVERIFY(action);
        QCOMPARE(action->shortcut(), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_M));

        const std::string layer = "model.layers.1.mlp.down_proj";
        const int tensor = tensorIndex(*w.session()->model(), layer);
        QVERIFY(tensor >= 0);
        QSignalSpy finished(view, &LayerCompareView::comparisonFinished);
        QSignalSpy failed(view, &LayerCompareView::comparisonFailed);
        w.compareMethods(tensor); // what the context menu, the layer view button and the Run action call
        QCOMPARE(w.plotTabs()->currentWidget(), static_cast<QWidget *>(view));
        QVERIFY(view->isRunning());
        QTRY_VERIFY_WITH_TIMEOUT(finished.size() + failed.size() == 1, 120000);
        QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
        QCOMPARE(finished.first().first().toString(), QString::fromStdString(layer));
        QTRY_VERIFY(!view->isRunning());

        CompareResultsModel *results = view->resultsModel();
        QCOMPARE(results->rowCount(), 4);
        QCOMPARE(results->index(1, CompareResultsModel::ConfigColumn).data(CompareResultsModel::SortRole).toString(),
                 QStringLiteral("GPTQ 4-bit g128"));
        const int best = results->bestRow();
        QVERIFY(best >= 0);
        int bestMarks = 0;
        double minError = 1e300;
        for (int r = 0; r < results->rowCount(); ++r) {
            const double e = results->index(r, CompareResultsModel::RelErrorColumn).data(CompareResultsModel::SortRole).toDouble();
            QVERIFY(e > 0.0);
            minError = std::min(minError, e);
            bestMarks += results->index(r, 0).data(CompareResultsModel::BestRole).toBool() ? 1 : 0;
        }
        QCOMPARE(bestMarks, 1);
        QCOMPARE(results->index(best, CompareResultsModel::RelErrorColumn).data(CompareResultsModel::SortRole).toDouble(), minError);
        const double rtn4 = results->index(0, CompareResultsModel::RelErrorColumn).data(CompareResultsModel::SortRole).toDouble();
        const double gptq4 = results->index(1, CompareResultsModel::RelErrorColumn).data(CompareResultsModel::SortRole).toDouble();
        QVERIFY(gptq4 < rtn4);
        QCOMPARE(view->histogramPlot()->seriesCount(), 4);
        view->histogramMode()->setCurrentIndex(1); // quantized weights: the original as a fifth, dashed series
        QCOMPARE(view->histogramPlot()->seriesCount(), 5);
        view->histogramMode()->setCurrentIndex(0);
        QCOMPARE(view->barPlot()->barCount(), 4);

        // Use GPTQ for this layer in the plan; undo restores the plan, redo applies it again.
        auto *planDock = w.findChild<PlanDock *>();
        QVERIFY(planDock);
        PlanModel *plan = planDock->planModel();
        const PlanModel::Row before = *planRow(plan, layer);
        QCOMPARE(before.config.method(), std::string("rtn"));
        const int steps = w.undoStack()->count();
        QSignalSpy planChanged(plan, &PlanModel::planChanged);
        view->resultsTable()->selectRow(1);
        QVERIFY(view->useInPlan());
        QCOMPARE(w.undoStack()->count(), steps + 1);
        QCOMPARE(planChanged.size(), 1);
        const PlanModel::Row *after = planRow(plan, layer);
        QCOMPARE(after->config.method(), std::string("gptq"));
        QCOMPARE(after->config.getInt("bits"), int64_t(4));
        QCOMPARE(after->config.getInt("group_size"), int64_t(128));
        QVERIFY(after->quantize);
        // Only this layer changed.
        int gptqRows = 0;
        for (const PlanModel::Row &r : plan->rows())
            gptqRows += r.config.method() == "gptq" ? 1 : 0;
        QCOMPARE(gptqRows, 1);
        QVERIFY(!view->useInPlan(1)); // already in the plan: no second undo step
        QCOMPARE(w.undoStack()->count(), steps + 1);
        w.undoStack()->undo();
        QVERIFY(*planRow(plan, layer) == before);
        w.undoStack()->redo();
        QCOMPARE(planRow(plan, layer)->config.method(), std::string("gptq"));
        w.undoStack()->undo();
        QVERIFY(*planRow(plan, layer) == before);

        // Another layer: no result yet; a cancelled run leaves the view ready and keeps the first result.
        const int other = tensorIndex(*w.session()->model(), "model.layers.3.self_attn.q_proj");
        QSignalSpy cancelled(view, &LayerCompareView::comparisonCancelled);
        w.compareMethods(other);
        QVERIFY(!view->hasResult());
        QVERIFY(view->isRunning());
        view->cancel();
        QTRY_VERIFY_WITH_TIMEOUT(!view->isRunning(), 30000);
        QVERIFY(cancelled.size() + finished.size() == 2); // cancelled, or done before the cancel arrived
        w.compareMethods(tensor);
        QVERIFY(view->hasResult()); // kept per layer: no new run
        QVERIFY(!view->isRunning());

        w.plotTabs()->setCurrentWidget(view);
        view->resultsTable()->selectRow(results->bestRow());
        QTest::qWait(50);
        QVERIFY(view->grab().save(qs::test::outputDir() + QStringLiteral("/layer_compare.png")));

        // The Layer tab's button leads to the same place; it is off for layers that cannot be compared.
        auto *modelDock = qobject_cast<ModelDock *>(w.modelDock());
        QVERIFY(modelDock);
        auto *button = w.layerView()->findChild<QPushButton *>(QStringLiteral("compareMethodsButton"));
        QVERIFY(button);
        modelDock->selectTensor(tensorIndex(*w.session()->model(), "model.layers.0.input_layernorm"));
        QVERIFY(!button->isEnabled());
        QVERIFY(!view->canCompare());
        const std::string third = "model.layers.0.self_attn.o_proj";
        modelDock->selectTensor(tensorIndex(*w.session()->model(), third));
        QVERIFY(button->isEnabled());
        w.plotTabs()->setCurrentWidget(w.layerView());
        button->click();
        QCOMPARE(w.plotTabs()->currentWidget(), static_cast<QWidget *>(view));
        QCOMPARE(view->layerName(), QString::fromStdString(third));
        QTRY_VERIFY_WITH_TIMEOUT(!view->isRunning(), 120000);
        QVERIFY(view->hasResult());
        QCOMPARE(view->resultsModel()->rowCount(), 4);
    }
};

QTEST_MAIN(TestLayerCompareView)
#include "tst_layercompare_view.moc"
