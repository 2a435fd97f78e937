// The window stays responsive while a model opens and its statistics are computed: a 5 ms timer on the
// GUI thread records the longest gap between its ticks (an "event-loop stall") from File › Open until the
// statistics are in the tree, then while layers are selected and the tree is sorted. Reading, statistics
// and plot data preparation are jobs, so stalls come only from GUI work (filling the tree, drawing).
//
// In CI it runs on a generated "small" F16 demo model. Set QS_RESPONSIVENESS_MODEL to a model path
// (e.g. a `quantscope-cli make-demo DIR --preset 1b` folder) to measure a big model by hand; the figures
// are printed either way.
#include <QApplication>
#include <QElapsedTimer>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>
#include <QTreeView>

#include <algorithm>

#include "LayerView.h"
#include "MainWindow.h"
#include "ModelDock.h"
#include "ModelSession.h"
#include "ModelTreeModel.h"
#include "TestData.h"
#include "common/Progress.h"
#include "model/DemoModel.h"
#include "model/Model.h"

using namespace qs::ui;

namespace {

// Longest gap between consecutive ticks of a fast timer on the GUI thread.
class StallProbe : public QObject
{
public:
    explicit StallProbe(QObject *parent = nullptr)
        : QObject(parent)
    {
        m_timer.setInterval(5);
        m_timer.setTimerType(Qt::PreciseTimer);
        connect(&m_timer, &QTimer::timeout, this, [this] {
            const qint64 now = m_clock.nsecsElapsed();
            m_worstNs = std::max(m_worstNs, now - m_lastNs);
            m_lastNs = now;
            ++m_ticks;
        });
    }
    void start()
    {
        m_clock.start();
        m_lastNs = 0;
        m_worstNs = 0;
        m_ticks = 0;
        m_timer.start();
    }
    // Includes the time since the last tick: a stall still going on counts too.
    double worstMs() const { return double(std::max(m_worstNs, m_clock.nsecsElapsed() - m_lastNs)) / 1e6; }
    qint64 ticks() const { return m_ticks; }
    double elapsedMs() const { return double(m_clock.nsecsElapsed()) / 1e6; }

private:
    QTimer m_timer;
    QElapsedTimer m_clock;
    qint64 m_lastNs = 0;
    qint64 m_worstNs = 0;
    qint64 m_ticks = 0;
};

// Generous for a sanitizer build on a loaded two-core CI machine; a stall of this length is what a user
// notices as a frozen window. The measured figures are printed so a regression shows before it fails.
constexpr double kWorstStallMs = 400.0;

} // namespace

class TestResponsiveness : public QObject
{
    Q_OBJECT
private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("QuantScopeTest"));
        QCoreApplication::setApplicationName(QStringLiteral("tst_responsiveness"));
    }

    void openAndStatisticsDoNotFreezeTheWindow()
    {
        QTemporaryDir tmp;
        QVERIFY(tmp.isValid());
        QString path = qEnvironmentVariable("QS_RESPONSIVENESS_MODEL");
        if (path.isEmpty()) {
            path = tmp.filePath(QStringLiteral("demo-small"));
            qs::core::DemoOptions o;
            o.preset = "small";
            o.dtype = "f16";
            qs::core::NullProgress quiet;
            qs::core::writeDemoModel(path.toStdString(), o, quiet);
        }

        MainWindow w;
        w.resize(1400, 900);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        ModelSession *session = w.session();
        QSignalSpy opened(session, &ModelSession::modelOpened);

        StallProbe probe;
        probe.start();
        w.openPath(path);
        QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 1, 120000);
        const double openedMs = probe.elapsedMs();
        const double stallWhileOpening = probe.worstMs();
        QTRY_VERIFY_WITH_TIMEOUT(session->stats() != nullptr, 600000);
        const double statsMs = probe.elapsedMs();
        const double stallUntilStats = probe.worstMs();

        // Browse: select every tenth layer (histogram, channel plot and table redraw) and sort the tree.
        auto *dock = qobject_cast<ModelDock *>(w.modelDock());
        QVERIFY(dock);
        const auto model = session->model();
        QVERIFY(model);
        probe.start();
        for (size_t i = 0; i < model->tensors.size(); i += 10) {
            dock->selectTensor(int(i));
            QCOMPARE(w.layerView()->tensorIndex(), int(i));
            QTest::qWait(10);
        }
        dock->view()->sortByColumn(ModelTreeModel::KurtosisColumn, Qt::DescendingOrder);
        QTest::qWait(20);
        dock->view()->sortByColumn(ModelTreeModel::NameColumn, Qt::AscendingOrder);
        QTest::qWait(20);
        const double stallWhileBrowsing = probe.worstMs();

        qInfo("%s: %zu tensors; opened after %.0f ms, statistics after %.0f ms; longest event-loop stall "
              "%.1f ms while opening, %.1f ms until statistics, %.1f ms while browsing (limit %.0f ms)",
            qPrintable(path), model->tensors.size(), openedMs, statsMs, stallWhileOpening, stallUntilStats,
            stallWhileBrowsing, kWorstStallMs);
        QVERIFY2(stallUntilStats < kWorstStallMs, qPrintable(QStringLiteral("%1 ms").arg(stallUntilStats)));
        QVERIFY2(stallWhileBrowsing < kWorstStallMs, qPrintable(QStringLiteral("%1 ms").arg(stallWhileBrowsing)));
        QVERIFY(probe.ticks() > 0);
        QVERIFY(w.grab().save(qs::test::outputDir() + QStringLiteral("/responsiveness.png")));
    }
};

QTEST_MAIN(TestResponsiveness)
#include "tst_responsiveness.moc"
