// Opening real models in the window: the model tree (checked by QAbstractItemModelTester), statistics
// arriving as a job, the layer view's histogram/channel plots and table, the outlier threshold, and
// screenshots of the result (test-output/modelview*.png).
#include <QAbstractItemModelTester>
#include <QApplication>
#include <QDockWidget>
#include <QSignalSpy>
#include <QSortFilterProxyModel>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTabWidget>
#include <QTest>
#include <QTimer>
#include <QTreeView>

#include "JobRunner.h"
#include "LayerView.h"
#include "MainWindow.h"
#include "ModelDock.h"
#include "ModelSession.h"
#include "ModelTreeModel.h"
#include "TestData.h"
#include "model/Model.h"
#include "plots/ChannelPlot.h"
#include "plots/HistogramPlot.h"
#include "stats/WeightStats.h"

using namespace qs::ui;

namespace {

void closeModalBoxes(QObject *owner)
{
    auto *closer = new QTimer(owner);
    QObject::connect(closer, &QTimer::timeout, owner, [] {
        if (QWidget *m = QApplication::activeModalWidget())
            m->close();
    });
    closer->start(20);
}

int tensorIndex(const qs::core::Model &m, const std::string &name)
{
    for (size_t i = 0; i < m.tensors.size(); ++i)
        if (m.tensors[i].name == name)
            return int(i);
    return -1;
}

} // namespace

class TestModelView : public QObject
{
    Q_OBJECT
private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("QuantScopeTest"));
        QCoreApplication::setApplicationName(QStringLiteral("tst_modelview"));
    }

    void opensModelAndShowsStatistics()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K-hf");
        MainWindow w;
        w.resize(1400, 900);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        ModelSession *session = w.session();
        session->setOutlierSigma(6.0);
        auto *dock = qobject_cast<ModelDock *>(w.modelDock());
        QVERIFY(dock);
        QAbstractItemModelTester tester(dock->treeModel(), QAbstractItemModelTester::FailureReportingMode::QtTest);

        QSignalSpy opened(session, &ModelSession::modelOpened);
        QSignalSpy statsChanged(session, &ModelSession::statsChanged);
        w.openPath(path);
        QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 1, 10000);
        QTRY_VERIFY_WITH_TIMEOUT(session->stats() != nullptr, 20000);
        const auto model = session->model();
        QCOMPARE(int(session->stats()->size()), int(model->tensors.size()));

        // Tree: embed, 5 blocks, norm, lm_head at the top; 9 layers per block.
        ModelTreeModel *tree = dock->treeModel();
        QCOMPARE(tree->rowCount(), 1 + 5 + 2);
        const QModelIndex block0 = tree->index(1, 0);
        QCOMPARE(block0.data().toString(), QStringLiteral("Block 0"));
        QCOMPARE(tree->rowCount(block0), 9);
        const QModelIndex q0 = tree->index(1, ModelTreeModel::ShapeColumn, block0);
        QCOMPARE(q0.siblingAtColumn(0).data().toString(), QStringLiteral("self_attn.q_proj"));
        QCOMPARE(q0.data().toString(), QStringLiteral("64 \u00d7 64"));
        QVERIFY(!q0.siblingAtColumn(ModelTreeModel::KurtosisColumn).data().toString().isEmpty());

        // Sorting by outliers puts the largest share first among the top-level rows.
        dock->view()->sortByColumn(ModelTreeModel::OutliersColumn, Qt::DescendingOrder);
        auto *proxy = qobject_cast<QSortFilterProxyModel *>(dock->view()->model());
        QVERIFY(proxy);
        double previous = 1e9;
        for (int r = 0; r < proxy->rowCount(); ++r) {
            const double v = proxy->index(r, ModelTreeModel::OutliersColumn).data(ModelTreeModel::SortRole).toDouble();
            QVERIFY(v <= previous);
            previous = v;
        }
        dock->view()->sortByColumn(ModelTreeModel::NameColumn, Qt::AscendingOrder);

        // Select q_proj of block 0: the layer view shows its histogram and channels.
        const int qIndex = tensorIndex(*model, "model.layers.0.self_attn.q_proj");
        QVERIFY(qIndex >= 0);
        dock->selectTensor(qIndex);
        LayerView *view = w.layerView();
        QCOMPARE(view->tensorIndex(), qIndex);
        const qs::core::WeightStats *s = session->statsFor(qIndex);
        QVERIFY(s);
        const auto bins = view->histogram()->bins();
        QCOMPARE(bins.size(), s->linearHistogram.counts.size());
        uint64_t total = 0;
        for (const auto &b : bins) {
            total += b.count;
            // A bin is marked as outlier exactly when it reaches beyond mean ± kσ.
            const double t = 6.0 * s->stddev;
            QCOMPARE(b.outlier, std::abs(b.lo - s->mean) > t || std::abs(b.hi - s->mean) > t);
        }
        QCOMPARE(total, s->count);
        QVERIFY(view->statsTable()->rowCount() >= 10);
        QTest::qWait(50);
        QVERIFY(w.grab().save(qs::test::outputDir() + QStringLiteral("/modelview.png")));

        // A lower threshold recomputes the statistics with more outliers.
        const uint64_t outliersAt6 = s->outlierCount;
        const int before = int(statsChanged.size());
        session->setOutlierSigma(2.0);
        QTRY_VERIFY_WITH_TIMEOUT(statsChanged.size() > before && session->statsFor(qIndex)->outlierSigma == 2.0, 20000);
        QVERIFY(session->statsFor(qIndex)->outlierCount > outliersAt6);
        int outlierBins = 0;
        for (const auto &b : view->histogram()->bins())
            outlierBins += b.outlier ? 1 : 0;
        QVERIFY(outlierBins > 0);
        QTest::qWait(50);
        QVERIFY(w.grab().save(qs::test::outputDir() + QStringLiteral("/modelview-2sigma.png")));
        session->setOutlierSigma(6.0);
    }

    void everyTestModelOpensInTheWindow_data()
    {
        QTest::addColumn<QString>("relative");
        QTest::newRow("gguf") << QStringLiteral("models/stories260K.gguf");
        QTest::newRow("hf-bf16-sharded") << QStringLiteral("models/stories260K-hf-bf16-sharded");
        QTest::newRow("llama2c") << QStringLiteral("models/stories260K-llama2c/stories260K.bin");
        QTest::newRow("aidreams") << QStringLiteral("models/aidreams260K-llama2c/aidreams260K.bin");
    }
    void everyTestModelOpensInTheWindow()
    {
        QFETCH(QString, relative);
        const QString path = qs::test::testDataPath(relative);
        if (!QFileInfo::exists(path)) {
            if (qs::test::inCi())
                QFAIL(qPrintable(QStringLiteral("test data missing: ") + path));
            QSKIP("test data missing");
        }
        MainWindow w;
        QSignalSpy opened(w.session(), &ModelSession::modelOpened);
        w.openPath(path);
        QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 1, 10000);
        QTRY_VERIFY_WITH_TIMEOUT(w.session()->stats() != nullptr, 20000);
    }

    void corruptFileGivesReadableErrorNotACrash()
    {
        QS_REQUIRE_TESTDATA(source, "models/stories260K.gguf");
        QTemporaryDir dir;
        QFile in(source);
        QVERIFY(in.open(QIODevice::ReadOnly));
        const QByteArray bytes = in.read(1000); // header only: truncated
        const QString bad = dir.filePath(QStringLiteral("truncated.gguf"));
        QFile out(bad);
        QVERIFY(out.open(QIODevice::WriteOnly));
        out.write(bytes);
        out.close();
        MainWindow w;
        closeModalBoxes(&w);
        QSignalSpy failed(w.session(), &ModelSession::openFailed);
        w.openPath(bad);
        QTRY_COMPARE_WITH_TIMEOUT(failed.size(), 1, 10000);
        QVERIFY2(failed.first().at(1).toString().contains(QStringLiteral("truncated.gguf")),
                 qPrintable(failed.first().at(1).toString()));
        QVERIFY(!w.session()->model());
    }

    void demoModelOpensLabelledSynthetic()
    {
        MainWindow w;
        QSignalSpy opened(w.session(), &ModelSession::modelOpened);
        w.openDemoModel();
        QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 1, 60000);
        QVERIFY(w.session()->model()->hparams.synthetic);
        QVERIFY(w.windowTitle().contains(QStringLiteral("synthetic")));
        QTRY_VERIFY_WITH_TIMEOUT(w.session()->stats() != nullptr, 60000);
        // The planted outlier input channels show up in q_proj's column absmax.
        const int q = tensorIndex(*w.session()->model(), "model.layers.0.self_attn.q_proj");
        auto *dock = qobject_cast<ModelDock *>(w.modelDock());
        w.resize(1400, 900);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        dock->selectTensor(q);
        QVERIFY(!w.layerView()->channels()->outlierChannels().empty());
        QTest::qWait(50);
        QVERIFY(w.grab().save(qs::test::outputDir() + QStringLiteral("/demomodel.png")));
    }
};

QTEST_MAIN(TestModelView)
#include "tst_modelview.moc"
