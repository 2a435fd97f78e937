// Opens the main window offscreen, checks its shell (docks, menus, shortcuts, settings round trip) and
// saves a screenshot in the build tree (test-output/mainwindow.png) for people to look at.
#include <QAction>
#include <QDockWidget>
#include <QMenuBar>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTimer>
#include <QApplication>
#include <QTest>
#include <QUndoCommand>
#include <QUndoStack>

#include "LogDock.h"
#include "MainWindow.h"
#include "ModelSession.h"
#include "Settings.h"
#include "TestData.h"

using namespace qs::ui;

namespace {

QAction *findAction(QMenuBar *bar, const QString &menuTitle, const QString &actionPrefix)
{
    for (QAction *menuAction : bar->actions()) {
        if (menuAction->text().remove(QLatin1Char('&')) != menuTitle)
            continue;
        for (QAction *a : menuAction->menu()->actions())
            if (a->text().remove(QLatin1Char('&')).startsWith(actionPrefix))
                return a;
    }
    return nullptr;
}

} // namespace

class TestMainWindow : public QObject
{
    Q_OBJECT
private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("QuantScopeTest"));
        QCoreApplication::setApplicationName(QStringLiteral("tst_mainwindow"));
        Settings().clearRecentFiles();
    }

    void shellHasDocksMenusAndShortcuts()
    {
        MainWindow w;
        w.resize(1280, 800);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        for (const char *name : {"ModelDock", "PlanDock", "JobsDock", "LogDock"})
            QVERIFY2(w.findChild<QDockWidget *>(QString::fromLatin1(name)), name);
        QCOMPARE(w.dockWidgetArea(w.findChild<QDockWidget *>(QStringLiteral("ModelDock"))), Qt::LeftDockWidgetArea);
        QCOMPARE(w.dockWidgetArea(w.findChild<QDockWidget *>(QStringLiteral("PlanDock"))), Qt::RightDockWidgetArea);
        QCOMPARE(w.dockWidgetArea(w.findChild<QDockWidget *>(QStringLiteral("JobsDock"))), Qt::BottomDockWidgetArea);
        QVERIFY(w.findChild<QTabWidget *>(QStringLiteral("plotTabs")));

        QMenuBar *bar = w.menuBar();
        QAction *open = findAction(bar, QStringLiteral("File"), QStringLiteral("Open model"));
        QVERIFY(open);
        QCOMPARE(open->shortcut(), QKeySequence(QKeySequence::Open));
        QVERIFY(findAction(bar, QStringLiteral("File"), QStringLiteral("Open recent")));
        QVERIFY(findAction(bar, QStringLiteral("File"), QStringLiteral("Open demo model")));
        QVERIFY(findAction(bar, QStringLiteral("File"), QStringLiteral("Save project")));
        QVERIFY(findAction(bar, QStringLiteral("File"), QStringLiteral("Export")));
        QVERIFY(findAction(bar, QStringLiteral("File"), QStringLiteral("Quit")));
        QAction *undo = findAction(bar, QStringLiteral("Edit"), QStringLiteral("Undo"));
        QVERIFY(undo);
        QVERIFY(!undo->isEnabled());
        QVERIFY(findAction(bar, QStringLiteral("Edit"), QStringLiteral("Redo")));
        QVERIFY(findAction(bar, QStringLiteral("View"), QStringLiteral("Jobs")));
        QVERIFY(findAction(bar, QStringLiteral("Help"), QStringLiteral("About QuantScope")));

        // Undo/redo come from the window's QUndoStack.
        int value = 0;
        struct Set : QUndoCommand {
            int &v; int to, from;
            Set(int &v, int to) : v(v), to(to), from(v) { setText(QStringLiteral("set")); }
            void redo() override { v = to; }
            void undo() override { v = from; }
        };
        w.undoStack()->push(new Set(value, 4));
        QCOMPARE(value, 4);
        QVERIFY(undo->isEnabled());
        undo->trigger();
        QCOMPARE(value, 0);

        const QImage shot = w.grab().toImage();
        QVERIFY(!shot.isNull());
        QVERIFY(shot.save(qs::test::outputDir() + QStringLiteral("/mainwindow.png")));
    }

    void openingAMissingFileReportsAReadableError()
    {
        MainWindow w;
        QSignalSpy failed(w.session(), &ModelSession::openFailed);
        // The warning dialog would block a test: close modal boxes as they appear.
        QTimer closer;
        connect(&closer, &QTimer::timeout, this, [] {
            if (QWidget *m = QApplication::activeModalWidget())
                m->close();
        });
        closer.start(20);
        w.openPath(QStringLiteral("/nonexistent/model.gguf"));
        QTRY_COMPARE_WITH_TIMEOUT(failed.size(), 1, 5000);
        const QString error = failed.first().at(1).toString();
        QVERIFY2(error.contains(QStringLiteral("/nonexistent/model.gguf")), qPrintable(error));
        QVERIFY(w.logDock()->text().contains(QStringLiteral("/nonexistent/model.gguf")));
    }

    void settingsRememberRecentFilesAndGeometry()
    {
        Settings s;
        s.clearRecentFiles();
        for (int i = 0; i < Settings::kMaxRecentFiles + 3; ++i)
            s.addRecentFile(QStringLiteral("/models/m%1").arg(i));
        s.addRecentFile(QStringLiteral("/models/m5/"));
        const QStringList recent = s.recentFiles();
        QCOMPARE(recent.size(), Settings::kMaxRecentFiles);
        QCOMPARE(recent.first(), QStringLiteral("/models/m5"));
        QCOMPARE(recent.count(QStringLiteral("/models/m5")), 1);
        s.removeRecentFile(QStringLiteral("/models/m5"));
        QVERIFY(!s.recentFiles().contains(QStringLiteral("/models/m5")));

        QByteArray geometry;
        {
            MainWindow w;
            w.resize(900, 600);
            w.show();
            QVERIFY(QTest::qWaitForWindowExposed(&w));
            w.close();
            geometry = Settings().windowGeometry();
        }
        QVERIFY(!geometry.isEmpty());
        QCOMPARE(Settings().outlierSigma(), 6.0);
    }
};

QTEST_MAIN(TestMainWindow)
#include "tst_mainwindow.moc"
