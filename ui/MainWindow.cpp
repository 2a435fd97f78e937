#include "MainWindow.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QShowEvent>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QStatusBar>
#include <QTabWidget>
#include <QUndoStack>

#include "JobRunner.h"
#include "JobsDock.h"
#include "ActivationView.h"
#include "CalibrationDock.h"
#include "LayerView.h"
#include "LogDock.h"
#include "ModelDock.h"
#include "ModelSession.h"
#include "PlanDock.h"
#include "PlanModel.h"
#include "RunsModel.h"
#include "RunsView.h"
#include "quant/Pipeline.h"
#include <nlohmann/json.hpp>
#include "Settings.h"
#include "StartPage.h"
#include "common/Version.h"
#include "io/FormatRegistry.h"
#include "model/ActivationObserver.h"
#include "model/Model.h"

// Resources compiled into the static qs_ui library must be registered by hand.
static void initResources() { Q_INIT_RESOURCE(resources); }

namespace qs::ui {

MainWindow::MainWindow(QWidget *parent)
    : QMainWindow(parent),
      m_runner(new JobRunner(this, std::max(1, QThread::idealThreadCount()))),
      m_session(new ModelSession(m_runner, this)),
      m_undoStack(new QUndoStack(this)),
      m_settings(new Settings)
{
    initResources();
    setObjectName(QStringLiteral("MainWindow"));
    setAcceptDrops(true);
    setDockNestingEnabled(true);

    m_plotTabs = new QTabWidget(this);
    m_plotTabs->setObjectName(QStringLiteral("plotTabs"));
    m_plotTabs->setDocumentMode(true);
    auto *start = new StartPage(this);
    m_plotTabs->addTab(start, tr("Start"));
    connect(start, &StartPage::openRequested, this, &MainWindow::showOpenDialog);
    connect(start, &StartPage::demoRequested, this, &MainWindow::openDemoModel);
    m_layerView = new LayerView(m_session, this);
    m_plotTabs->addTab(m_layerView, tr("Layer"));
    m_activationView = new ActivationView(m_session, this);
    m_plotTabs->addTab(m_activationView, tr("Activations"));
    m_runs = new RunsModel(m_session, this);
    m_runsView = new RunsView(m_session, m_runs, this);
    m_plotTabs->addTab(m_runsView, tr("Runs"));
    connect(m_runs, &RunsModel::message, this, [this](const QString &t) { m_logDock->append(LogLevel::Warning, t); });
    connect(m_runs, &RunsModel::runFinished, this, [this](int id) {
        const auto run = m_runs->run(id);
        if (!run)
            return;
        if (run->state == RunsModel::State::Done && run->result) {
            QString summary = tr("%1 done: %2 bits/weight").arg(run->name).arg(run->result->bitsPerWeight, 0, 'f', 3);
            if (run->result->evaluation)
                summary += tr(", perplexity %1 (original %2), KLD %3")
                               .arg(run->result->evaluation->perplexity, 0, 'f', 4)
                               .arg(run->result->evaluation->originalPerplexity, 0, 'f', 4)
                               .arg(run->result->evaluation->kldMean, 0, 'g', 4);
            m_logDock->append(LogLevel::Info, summary);
            for (const std::string &w : run->result->warnings)
                m_logDock->append(LogLevel::Warning, QString::fromStdString(w));
        }
    });
    setCentralWidget(m_plotTabs);
    m_session->setOutlierSigma(m_settings->outlierSigma());
    m_session->setHistogramBins(m_settings->histogramBins());
    connect(m_session, &ModelSession::outlierSigmaChanged, this, [this](double k) { m_settings->setOutlierSigma(k); });

    createDocks();
    createMenus();

    m_statusModel = new QLabel(tr("No model"), this);
    statusBar()->addPermanentWidget(m_statusModel);
    statusBar()->showMessage(tr("Ready"), 3000);

    connect(m_session, &ModelSession::modelOpened, this, [this](const QString &path) {
        m_settings->addRecentFile(path);
        updateRecentMenu();
        updateTitle();
        statusBar()->showMessage(tr("Opened %1").arg(path), 5000);
    });
    connect(m_session, &ModelSession::openFailed, this, [this](const QString &path, const QString &error) {
        m_logDock->append(LogLevel::Error, error);
        statusBar()->showMessage(tr("Could not open %1").arg(QFileInfo(path).fileName()), 8000);
        QMessageBox::warning(this, tr("Could not open model"), error);
    });
    connect(m_session, &ModelSession::message, this,
            [this](const QString &t) { m_logDock->append(LogLevel::Info, t); });
    connect(m_session, &ModelSession::warning, this,
            [this](const QString &t) { m_logDock->append(LogLevel::Warning, t); });
    connect(m_runner, &JobRunner::failed, this,
            [this](JobId id, const QString &e) { m_logDock->append(LogLevel::Error, e); Q_UNUSED(id); });

    resize(1280, 800);
    restoreGeometry(m_settings->windowGeometry());
    m_layoutRestored = restoreState(m_settings->windowState());
    updateTitle();
}

MainWindow::~MainWindow()
{
    // Jobs capture the session and the window: stop them before anything they point to goes away.
    delete m_runner;
    m_runner = nullptr;
    delete m_settings;
}

void MainWindow::createDocks()
{
    auto *modelDock = new ModelDock(m_session, this);
    m_modelDock = modelDock;
    connect(modelDock, &ModelDock::tensorSelected, this, [this](int tensor) {
        m_layerView->showTensor(tensor);
        m_activationView->showTensor(tensor);
        if (m_plotTabs->currentWidget() != m_activationView)
            m_plotTabs->setCurrentWidget(m_layerView);
    });
    addDockWidget(Qt::LeftDockWidgetArea, m_modelDock);

    auto *planDock = new PlanDock(m_session, m_undoStack, this);
    m_planDock = planDock;
    connect(planDock, &PlanDock::message, this, [this](const QString &t) { m_logDock->append(LogLevel::Info, t); });
    connect(planDock, &PlanDock::quantizeRequested, this, &MainWindow::startQuantization);
    connect(planDock, &PlanDock::layerSelected, this, [modelDock](int tensor) { modelDock->selectTensor(tensor); });
    addDockWidget(Qt::RightDockWidgetArea, m_planDock);
    m_calibrationDock = new CalibrationDock(m_session, m_settings, this);
    addDockWidget(Qt::RightDockWidgetArea, m_calibrationDock);
    tabifyDockWidget(m_planDock, m_calibrationDock);
    m_planDock->raise();
    connect(m_calibrationDock, &CalibrationDock::activationInputSelected, this, [this, modelDock](int block, int input) {
        // Show the first layer that reads this input.
        const auto model = m_session->model();
        if (!model)
            return;
        for (size_t i = 0; i < model->tensors.size(); ++i) {
            const core::Tensor &t = model->tensors[i];
            if (!core::isLinearRole(t.role) || int(core::linearInputOf(t.role)) != input)
                continue;
            if ((t.role == core::TensorRole::LmHead ? -1 : t.block) != block)
                continue;
            m_plotTabs->setCurrentWidget(m_activationView);
            modelDock->selectTensor(int(i));
            return;
        }
    });

    m_jobsDock = new JobsDock(m_runner, this);
    addDockWidget(Qt::BottomDockWidgetArea, m_jobsDock);
    m_logDock = new LogDock(this);
    addDockWidget(Qt::BottomDockWidgetArea, m_logDock);
    tabifyDockWidget(m_jobsDock, m_logDock);
    m_jobsDock->raise();

}

void MainWindow::createMenus()
{
    QMenu *file = menuBar()->addMenu(tr("&File"));
    QAction *open = file->addAction(tr("&Open model\u2026"), this, &MainWindow::showOpenDialog);
    open->setShortcut(QKeySequence::Open);
    m_recentMenu = file->addMenu(tr("Open &recent"));
    QAction *demo = file->addAction(tr("Open &demo model"), this, &MainWindow::openDemoModel);
    demo->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_D));
    file->addSeparator();
    QAction *save = file->addAction(tr("&Save project"));
    save->setShortcut(QKeySequence::Save);
    save->setEnabled(false);
    save->setToolTip(tr("Projects arrive with the HDF5 project issue"));
    QAction *exportAction = file->addAction(tr("&Export\u2026"));
    exportAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
    exportAction->setEnabled(false);
    file->addSeparator();
    QAction *quit = file->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setShortcut(QKeySequence::Quit);

    QMenu *edit = menuBar()->addMenu(tr("&Edit"));
    QAction *undo = m_undoStack->createUndoAction(this, tr("&Undo"));
    undo->setShortcut(QKeySequence::Undo);
    QAction *redo = m_undoStack->createRedoAction(this, tr("&Redo"));
    redo->setShortcut(QKeySequence::Redo);
    edit->addAction(undo);
    edit->addAction(redo);
    edit->addSeparator();
    QAction *cancelJobs = edit->addAction(tr("Cancel all jobs"), this, [this] { m_runner->cancelAll(); });
    cancelJobs->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Period));

    m_viewMenu = menuBar()->addMenu(tr("&View"));
    for (QDockWidget *dock : {m_modelDock, m_planDock, static_cast<QDockWidget *>(m_calibrationDock), static_cast<QDockWidget *>(m_jobsDock),
                              static_cast<QDockWidget *>(m_logDock)})
        m_viewMenu->addAction(dock->toggleViewAction());

    QMenu *run = menuBar()->addMenu(tr("&Run"));
    QAction *quantize = run->addAction(tr("&Quantize with plan"), this, &MainWindow::startQuantization);
    quantize->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_R));
    run->addAction(tr("Run &calibration"), this, [this] { m_calibrationDock->startCalibration(); });
    run->addAction(tr("&Evaluate perplexity"), this, [this] { m_calibrationDock->startEvaluation(); });
    run->addSeparator();
    QAction *rule = run->addAction(tr("Plan &rule\u2026"), this, [this] { static_cast<PlanDock *>(m_planDock)->showRuleDialog(); });
    rule->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_R));

    QMenu *help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&About QuantScope"), this, &MainWindow::showAbout);
    help->addAction(tr("About &Qt"), qApp, &QApplication::aboutQt);

    updateRecentMenu();
}

void MainWindow::updateRecentMenu()
{
    m_recentMenu->clear();
    const QStringList recent = m_settings->recentFiles();
    for (int i = 0; i < recent.size(); ++i) {
        const QString path = recent.at(i);
        QAction *a = m_recentMenu->addAction(QStringLiteral("&%1 %2").arg((i + 1) % 10).arg(path));
        connect(a, &QAction::triggered, this, [this, path] { openPath(path); });
    }
    if (!recent.isEmpty()) {
        m_recentMenu->addSeparator();
        m_recentMenu->addAction(tr("Clear list"), this, [this] {
            m_settings->clearRecentFiles();
            updateRecentMenu();
        });
    }
    m_recentMenu->setEnabled(!recent.isEmpty());
}

void MainWindow::showOpenDialog()
{
    QStringList patterns;
    for (const core::ModelFormat &f : core::modelFormats())
        for (const std::string &p : f.filePatterns)
            patterns << QString::fromStdString(p);
    const QString filter = tr("Models (%1);;All files (*)").arg(patterns.join(QLatin1Char(' ')));
    const QString path = QFileDialog::getOpenFileName(this, tr("Open model (pick a .gguf, a llama2.c .bin, or a Hugging Face folder's config.json)"),
                                                      m_settings->lastOpenDirectory(), filter);
    if (path.isEmpty())
        return;
    m_settings->setLastOpenDirectory(QFileInfo(path).absolutePath());
    // A Hugging Face model is its folder: open the folder when the user picked a file inside it.
    const QFileInfo info(path);
    if (info.fileName() == QLatin1String("config.json") || info.suffix() == QLatin1String("safetensors")
        || info.fileName() == QLatin1String("model.safetensors.index.json"))
        openPath(info.absolutePath());
    else
        openPath(path);
}

void MainWindow::openPath(const QString &path)
{
    m_logDock->append(LogLevel::Info, tr("Opening %1").arg(path));
    m_session->openModel(path);
}

void MainWindow::openDemoModel()
{
    m_logDock->append(LogLevel::Info, tr("Opening the synthetic demo model (%1)").arg(ModelSession::demoModelPath()));
    m_session->openDemoModel();
}

void MainWindow::startQuantization()
{
    auto *planDock = static_cast<PlanDock *>(m_planDock);
    if (!m_session->model() || planDock->planModel()->rowCount() == 0)
        return;
    if (m_settings->calibrationText().isEmpty()) {
        m_calibrationDock->show();
        m_calibrationDock->raise();
        QMessageBox::information(this, tr("Calibration text needed"),
                                 tr("Choose a calibration text in the Calibration & evaluation dock first; "
                                    "the same settings (samples, tokens, seed) are used for quantization."));
        return;
    }
    core::PipelineOptions options;
    options.calibrationText = m_settings->calibrationText().toStdString();
    options.samples = m_settings->calibrationSamples();
    options.seqLen = m_settings->calibrationSeqLen();
    options.seed = uint64_t(m_settings->calibrationSeed());
    options.evalText = m_settings->evalText().toStdString();
    options.eval.ctx = m_settings->evalContext();
    options.eval.maxChunks = m_settings->evalMaxChunks();
    options.eval.protocol = core::parseEvalProtocol(m_settings->evalProtocol().toStdString());
    const nlohmann::json plan = planDock->planModel()->toPlanJson();
    const QString name = tr("Run %1: %2 %3-bit").arg(m_runs->runs().size() + 1)
                             .arg(QString::fromStdString(plan["default"].value("method", std::string("?"))))
                             .arg(plan["default"].value("bits", 0));
    if (m_runs->startRun(plan, options, name) > 0)
        m_plotTabs->setCurrentWidget(m_runsView);
}

void MainWindow::showAbout()
{
    QMessageBox::about(this, tr("About QuantScope"),
                       tr("<h3>QuantScope %1</h3><p>A workbench for quantizing large language models: "
                          "inspect weights and activations, plan per-layer quantization, run, evaluate and export.</p>"
                          "<p>Qt %2 (built with %3)<br>Eigen %4<br>HDF5 %5<br>%6</p>")
                           .arg(QString::fromStdString(core::quantscopeVersion()), QString::fromLatin1(qVersion()),
                                QStringLiteral(QT_VERSION_STR), QString::fromStdString(core::eigenVersion()),
                                QString::fromStdString(core::hdf5Version()),
                                QString::fromStdString(core::compilerVersion()).toHtmlEscaped()));
}

void MainWindow::updateTitle()
{
    const QString path = m_session->modelPath();
    if (path.isEmpty()) {
        setWindowTitle(tr("QuantScope"));
        m_statusModel->setText(tr("No model"));
    } else {
        const bool synthetic = m_session->model() && m_session->model()->hparams.synthetic;
        setWindowTitle(tr("%1%2 \u2014 QuantScope").arg(QFileInfo(path).fileName(), synthetic ? tr(" [synthetic]") : QString()));
        m_statusModel->setText(synthetic ? tr("%1 \u2014 SYNTHETIC demo model").arg(path) : path);
    }
}

void MainWindow::showEvent(QShowEvent *event)
{
    QMainWindow::showEvent(event);
    if (m_shown || m_layoutRestored)
        return;
    m_shown = true;
    // First start: give the model tree room for its columns and keep the bottom docks short.
    resizeDocks({m_modelDock, m_planDock}, {width() * 3 / 10, width() / 5}, Qt::Horizontal);
    resizeDocks({m_jobsDock}, {height() / 5}, Qt::Vertical);
}

void MainWindow::closeEvent(QCloseEvent *event)
{
    m_settings->setWindowGeometry(saveGeometry());
    m_settings->setWindowState(saveState());
    m_runner->cancelAll();
    event->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent *event)
{
    if (event->mimeData()->hasUrls() && event->mimeData()->urls().size() == 1
        && event->mimeData()->urls().first().isLocalFile())
        event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent *event)
{
    const QList<QUrl> urls = event->mimeData()->urls();
    if (urls.size() != 1 || !urls.first().isLocalFile())
        return;
    QString path = urls.first().toLocalFile();
    const QFileInfo info(path);
    if (info.isFile() && (info.fileName() == QLatin1String("config.json") || info.suffix() == QLatin1String("safetensors")))
        path = info.absolutePath();
    event->acceptProposedAction();
    openPath(path);
}

} // namespace qs::ui
