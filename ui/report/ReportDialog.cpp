#include "ReportDialog.h"

#include <QCheckBox>
#include <QDesktopServices>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMessageBox>
#include <QPointer>
#include <QProgressDialog>
#include <QPushButton>
#include <QSpinBox>
#include <QUrl>
#include <QVBoxLayout>

#include <cmath>

#include "ModelSession.h"
#include "RunsModel.h"
#include "Settings.h"

namespace qs::ui {

namespace {
constexpr int kRunIdRole = Qt::UserRole + 1; // > 0: a run of the runs list
constexpr int kRunDirRole = Qt::UserRole + 2; // a RUN_DIR folder added by the user
} // namespace

ReportDialog::ReportDialog(RunsModel *runs, Settings *settings, QWidget *parent)
    : QDialog(parent), m_runsModel(runs), m_settings(settings), m_runs(new QListWidget(this)),
      m_png(new QCheckBox(tr("PNG"), this)), m_svg(new QCheckBox(tr("SVG"), this)), m_pdf(new QCheckBox(tr("PDF"), this)),
      m_csv(new QCheckBox(tr("CSV"), this)), m_markdown(new QCheckBox(tr("Markdown"), this)), m_width(new QSpinBox(this)),
      m_height(new QSpinBox(this)), m_dpi(new QSpinBox(this)), m_histograms(new QSpinBox(this)), m_pixels(new QLabel(this)),
      m_folder(new QLineEdit(this)),
      m_buttons(new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this))
{
    setObjectName(QStringLiteral("ReportDialog"));
    setWindowTitle(tr("Export report"));
    auto *layout = new QVBoxLayout(this);

    layout->addWidget(new QLabel(tr("Runs to include:"), this));
    m_runs->setObjectName(QStringLiteral("reportRuns"));
    for (const auto &run : runs->runs()) {
        if (run->state != RunsModel::State::Done || !run->result)
            continue;
        auto *item = new QListWidgetItem(run->name, m_runs);
        item->setData(kRunIdRole, run->id);
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        item->setCheckState(Qt::Checked);
    }
    layout->addWidget(m_runs, 1);
    auto *addFolder = new QPushButton(tr("Add run folder\u2026"), this);
    addFolder->setToolTip(tr("Include a saved run (a RUN_DIR written by Quantize or quantscope-cli quantize)"));
    auto *runButtons = new QHBoxLayout;
    runButtons->addWidget(addFolder);
    runButtons->addStretch();
    layout->addLayout(runButtons);

    auto *form = new QFormLayout;
    const QStringList formats = settings->reportFormats();
    auto *charts = new QHBoxLayout;
    for (auto [box, key] : {std::pair{m_png, "png"}, {m_svg, "svg"}, {m_pdf, "pdf"}}) {
        box->setChecked(formats.contains(QLatin1String(key)));
        charts->addWidget(box);
    }
    charts->addStretch();
    form->addRow(tr("Charts:"), charts);
    auto *tables = new QHBoxLayout;
    for (auto [box, key] : {std::pair{m_csv, "csv"}, {m_markdown, "md"}}) {
        box->setChecked(formats.contains(QLatin1String(key)));
        tables->addWidget(box);
    }
    tables->addStretch();
    form->addRow(tr("Tables:"), tables);

    auto *size = new QHBoxLayout;
    for (QSpinBox *box : {m_width, m_height}) {
        box->setRange(100, 10000);
        box->setSuffix(tr(" px"));
    }
    m_width->setObjectName(QStringLiteral("reportWidth"));
    m_height->setObjectName(QStringLiteral("reportHeight"));
    m_width->setValue(settings->reportWidth());
    m_height->setValue(settings->reportHeight());
    size->addWidget(m_width);
    size->addWidget(new QLabel(QStringLiteral("\u00d7"), this));
    size->addWidget(m_height);
    size->addStretch();
    form->addRow(tr("Chart size (1/96 inch):"), size);
    m_dpi->setObjectName(QStringLiteral("reportDpi"));
    m_dpi->setRange(24, 1200);
    m_dpi->setValue(settings->reportDpi());
    auto *dpi = new QHBoxLayout;
    dpi->addWidget(m_dpi);
    dpi->addWidget(m_pixels, 1);
    form->addRow(tr("PNG resolution (DPI):"), dpi);
    m_histograms->setRange(0, 20);
    m_histograms->setValue(settings->reportHistograms());
    m_histograms->setToolTip(tr("Weight histograms with outlier bins of the layers with the highest output error"));
    form->addRow(tr("Weight histograms:"), m_histograms);

    auto *folder = new QHBoxLayout;
    m_folder->setObjectName(QStringLiteral("reportFolder"));
    m_folder->setText(settings->reportFolder());
    auto *browse = new QPushButton(tr("Browse\u2026"), this);
    folder->addWidget(m_folder, 1);
    folder->addWidget(browse);
    form->addRow(tr("Output folder:"), folder);
    layout->addLayout(form);
    auto *note = new QLabel(tr("The folder is written complete or not at all; an existing report there is replaced."), this);
    note->setWordWrap(true);
    layout->addWidget(note);
    layout->addWidget(m_buttons);

    connect(m_buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(addFolder, &QPushButton::clicked, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Add a run folder (RUN_DIR)"));
        if (!dir.isEmpty())
            addRunFolder(dir);
    });
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString dir = QFileDialog::getSaveFileName(this, tr("Report folder"), m_folder->text(), QString(), nullptr,
                                                         QFileDialog::ShowDirsOnly);
        if (!dir.isEmpty())
            m_folder->setText(dir);
    });
    for (QCheckBox *box : {m_png, m_svg, m_pdf, m_csv, m_markdown})
        connect(box, &QCheckBox::toggled, this, &ReportDialog::updateState);
    for (QSpinBox *box : {m_width, m_height, m_dpi})
        connect(box, &QSpinBox::valueChanged, this, &ReportDialog::updateState);
    connect(m_runs, &QListWidget::itemChanged, this, &ReportDialog::updateState);
    connect(m_folder, &QLineEdit::textChanged, this, &ReportDialog::updateState);
    updateState();
}

void ReportDialog::addRunFolder(const QString &path)
{
    auto *item = new QListWidgetItem(path, m_runs);
    item->setData(kRunDirRole, path);
    item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
    item->setCheckState(Qt::Checked);
    updateState();
}

void ReportDialog::setOutputFolder(const QString &path) { m_folder->setText(path); }

void ReportDialog::updateState()
{
    core::ReportOptions o;
    o.width = m_width->value();
    o.height = m_height->value();
    o.dpi = m_dpi->value();
    m_pixels->setText(tr("PNG files of %1 \u00d7 %2 pixels").arg(o.pixelWidth()).arg(o.pixelHeight()));
    m_pixels->setEnabled(m_png->isChecked());
    m_dpi->setEnabled(m_png->isChecked());
    bool anyRun = false;
    for (int i = 0; i < m_runs->count(); ++i)
        anyRun = anyRun || m_runs->item(i)->checkState() == Qt::Checked;
    bool anyFormat = false;
    for (QCheckBox *box : {m_png, m_svg, m_pdf, m_csv, m_markdown})
        anyFormat = anyFormat || box->isChecked();
    m_buttons->button(QDialogButtonBox::Ok)->setEnabled(anyRun && anyFormat && !m_folder->text().trimmed().isEmpty());
}

ReportExporter::Request ReportDialog::request(std::shared_ptr<const core::Model> model) const
{
    ReportExporter::Request r;
    for (int i = 0; i < m_runs->count(); ++i) {
        const QListWidgetItem *item = m_runs->item(i);
        if (item->checkState() != Qt::Checked)
            continue;
        if (const int id = item->data(kRunIdRole).toInt(); id > 0) {
            const auto run = m_runsModel->run(id);
            if (run && run->result)
                r.runs.push_back(core::ReportRun::fromQuantRun(*run->result, run->name.toStdString()));
        } else {
            r.runDirs.push_back(item->data(kRunDirRole).toString().toStdString());
        }
    }
    // Histograms come from the open model only when every run is one of its own (in memory); with saved
    // run folders the first run's original model is located as the CLI does.
    r.model = r.runDirs.empty() ? std::move(model) : nullptr;
    r.input.autoHistograms = m_histograms->value();
    r.options.width = m_width->value();
    r.options.height = m_height->value();
    r.options.dpi = m_dpi->value();
    r.options.png = m_png->isChecked();
    r.options.svg = m_svg->isChecked();
    r.options.pdf = m_pdf->isChecked();
    r.options.csv = m_csv->isChecked();
    r.options.markdown = m_markdown->isChecked();
    r.dir = m_folder->text().trimmed().toStdString();
    return r;
}

void ReportDialog::saveSettings() const
{
    m_settings->setReportWidth(m_width->value());
    m_settings->setReportHeight(m_height->value());
    m_settings->setReportDpi(m_dpi->value());
    m_settings->setReportHistograms(m_histograms->value());
    QStringList formats;
    for (auto [box, key] : {std::pair{m_png, "png"}, {m_svg, "svg"}, {m_pdf, "pdf"}, {m_csv, "csv"}, {m_markdown, "md"}})
        if (box->isChecked())
            formats << QLatin1String(key);
    m_settings->setReportFormats(formats);
    m_settings->setReportFolder(m_folder->text().trimmed());
}

void exportReport(QWidget *parent, JobRunner *runner, ModelSession *session, RunsModel *runs, Settings *settings)
{
    static QPointer<ReportExporter> running;
    if (running && running->isRunning()) {
        QMessageBox::information(parent, QObject::tr("Export report"), QObject::tr("A report is being written already."));
        return;
    }
    ReportDialog dialog(runs, settings, parent);
    if (dialog.exec() != QDialog::Accepted)
        return;
    dialog.saveSettings();
    ReportExporter::Request request = dialog.request(session->model());
    request.input.stats.outlierSigma = session->outlierSigma(); // the threshold the Layer tab shows
    const QString dir = QString::fromStdString(request.dir);

    auto *exporter = new ReportExporter(runner, parent);
    running = exporter;
    auto *progress = new QProgressDialog(QObject::tr("Writing the report\u2026"), QObject::tr("Cancel"), 0, 1000, parent);
    progress->setWindowTitle(QObject::tr("Export report"));
    progress->setMinimumDuration(500); // short exports finish without a dialog flashing up
    progress->setAutoClose(false);
    progress->setAutoReset(false);
    QObject::connect(progress, &QProgressDialog::canceled, exporter, &ReportExporter::cancel);
    QObject::connect(exporter, &ReportExporter::progress, progress, [progress](double fraction, const QString &message) {
        progress->setValue(int(std::lround(fraction * 1000)));
        progress->setLabelText(message);
    });
    auto done = [exporter, progress] {
        progress->deleteLater();
        exporter->deleteLater();
    };
    QObject::connect(exporter, &ReportExporter::finished, parent, [parent, done](const QString &folder, const QStringList &files) {
        done();
        const auto answer = QMessageBox::question(parent, QObject::tr("Report written"),
                                                  QObject::tr("Wrote %1 files to %2.\n\nOpen the folder?").arg(files.size()).arg(folder),
                                                  QMessageBox::Open | QMessageBox::Close, QMessageBox::Open);
        if (answer == QMessageBox::Open)
            QDesktopServices::openUrl(QUrl::fromLocalFile(folder));
    });
    QObject::connect(exporter, &ReportExporter::failed, parent, [parent, done](const QString &error) {
        done();
        QMessageBox::warning(parent, QObject::tr("Report not written"), error);
    });
    QObject::connect(exporter, &ReportExporter::cancelled, parent, [parent, done, dir] {
        done();
        QMessageBox::information(parent, QObject::tr("Report cancelled"),
                                 QObject::tr("The report was cancelled; nothing was written to %1.").arg(dir));
    });
    exporter->start(std::move(request));
}

} // namespace qs::ui
