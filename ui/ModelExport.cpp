#include "ModelExport.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>

#include <atomic>
#include <filesystem>
#include <unistd.h>

#include "ModelSession.h"
#include "RunsModel.h"
#include "common/Error.h"
#include "export/ExportSource.h"
#include "export/GgufExport.h"
#include "export/GptqExport.h"
#include "export/ProjectH5.h"
#include "quant/RunDir.h"

namespace qs::ui {

namespace {

// Removes a temporary RUN_DIR when the export ends, however it ends.
struct TemporaryRunDir
{
    std::string path;
    ~TemporaryRunDir()
    {
        if (!path.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    }
};

std::string temporaryRunDirPath()
{
    static std::atomic<int> counter{0};
    std::error_code ec;
    const std::filesystem::path dir = std::filesystem::temp_directory_path(ec);
    return ((ec ? std::filesystem::path("/tmp") : dir) /
            ("quantscope-export-" + std::to_string(::getpid()) + "-" + std::to_string(++counter)))
        .string();
}

} // namespace

JobId startModelExport(JobRunner *runner, ModelSession *session, RunsModel *runs, int runId,
                       const ModelExportRequest &request, std::function<void(int level, const QString &)> log)
{
    const std::shared_ptr<const core::Model> model = session->model();
    if (!model)
        return 0;
    std::shared_ptr<const core::QuantRun> result;
    std::string runDir;
    if (runId != 0) {
        const auto run = runs->run(runId);
        if (!run || run->state != RunsModel::State::Done || !run->result)
            return 0;
        result = run->result;
        if (!run->runDir.isEmpty() && !run->runDirMissing && core::isRunDir(run->runDir.toStdString()))
            runDir = run->runDir.toStdString();
    }
    const std::string modelPath = model->path;
    const ModelExportRequest r = request;
    auto work = [modelPath, result, runDir, r](core::Progress &progress) {
        TemporaryRunDir temporary;
        std::string sourcePath = modelPath;
        if (result) {
            if (runDir.empty()) {
                temporary.path = temporaryRunDirPath();
                progress.message("writing the run to a temporary RUN_DIR");
                core::writeRunDir(*result, temporary.path, progress);
                sourcePath = temporary.path;
            } else {
                sourcePath = runDir;
            }
        }
        const core::ExportSource source = core::openExportSource(sourcePath, progress);
        const std::string out = r.out.toStdString();
        core::ExportSummary summary;
        if (r.format == QLatin1String("gguf")) {
            core::GgufExportOptions options;
            options.type = r.ggufType.toStdString();
            summary = core::exportGguf(source, options, out, progress);
        } else if (r.format == QLatin1String("gptq")) {
            core::GptqExportOptions options;
            options.checkpointFormat = r.checkpointFormat.toStdString();
            summary = core::exportGptq(source, options, out, progress);
        } else {
            summary = core::exportProjectH5(source, core::ProjectExportOptions{}, out, progress);
        }
        return summary;
    };
    const QString title = QObject::tr("Export %1").arg(QFileInfo(r.out).fileName());
    return runner->run<core::ExportSummary>(
        title, QStringLiteral("export"), work,
        [log](std::shared_ptr<const core::ExportSummary> s) {
            log(0, QObject::tr("Exported %1 (%2, %3 MB, %4 tensors)")
                       .arg(QString::fromStdString(s->path), QString::fromStdString(s->format))
                       .arg(double(s->bytes) / 1e6, 0, 'f', 1)
                       .arg(s->tensors.size()));
            for (const std::string &note : s->notes)
                log(1, QString::fromStdString(note));
        },
        [log](const QString &error) { log(2, error); });
}

ModelExportDialog::ModelExportDialog(const QString &sourceLabel, bool isRun, const QString &suggestedBase, QWidget *parent)
    : QDialog(parent), m_isRun(isRun), m_base(suggestedBase), m_format(new QComboBox(this)), m_type(new QComboBox(this)),
      m_checkpoint(new QComboBox(this)), m_out(new QLineEdit(this))
{
    setWindowTitle(tr("Export"));
    auto *form = new QFormLayout(this);
    form->addRow(tr("Source:"), new QLabel(sourceLabel, this));
    m_format->addItem(tr("GGUF (llama.cpp)"), QStringLiteral("gguf"));
    if (isRun)
        m_format->addItem(tr("GPTQ checkpoint folder (transformers, GPTQModel, vLLM)"), QStringLiteral("gptq"));
    m_format->addItem(tr("HDF5 project"), QStringLiteral("hdf5"));
    form->addRow(tr("Format:"), m_format);
    if (isRun)
        m_type->addItem(tr("From the run (per tensor)"), QString());
    for (const char *t : {"F16", "F32", "BF16", "Q8_0", "Q6_K", "Q5_1", "Q5_0", "Q4_K", "Q4_1", "Q4_0"})
        m_type->addItem(QString::fromLatin1(t), QString::fromLatin1(t));
    m_type->setToolTip(tr("One GGUF type for every matrix; rows that do not fit a block type fall back per tensor"));
    form->addRow(tr("GGUF type:"), m_type);
    m_checkpoint->addItem(tr("gptq (v1, loads everywhere)"), QStringLiteral("gptq"));
    m_checkpoint->addItem(tr("gptq_v2 (GPTQModel)"), QStringLiteral("gptq_v2"));
    form->addRow(tr("Checkpoint format:"), m_checkpoint);
    auto *outRow = new QHBoxLayout;
    outRow->addWidget(m_out, 1);
    auto *browseButton = new QPushButton(tr("Browse\u2026"), this);
    outRow->addWidget(browseButton);
    form->addRow(tr("Output:"), outRow);
    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    buttons->button(QDialogButtonBox::Ok)->setText(tr("Export"));
    form->addRow(buttons);
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(browseButton, &QPushButton::clicked, this, &ModelExportDialog::browse);
    connect(m_format, &QComboBox::currentIndexChanged, this, &ModelExportDialog::updateFields);
    connect(m_out, &QLineEdit::textChanged, this,
            [this, buttons] { buttons->button(QDialogButtonBox::Ok)->setEnabled(!m_out->text().trimmed().isEmpty()); });
    updateFields();
}

void ModelExportDialog::updateFields()
{
    const QString format = m_format->currentData().toString();
    m_type->setEnabled(format == QLatin1String("gguf"));
    m_checkpoint->setEnabled(format == QLatin1String("gptq"));
    const QString suffix = format == QLatin1String("gguf")   ? QStringLiteral(".gguf")
                           : format == QLatin1String("gptq") ? QStringLiteral("-gptq")
                                                             : QStringLiteral(".qsproj.h5");
    m_out->setText(m_base + suffix);
}

void ModelExportDialog::browse()
{
    const QString format = m_format->currentData().toString();
    const QString filter = format == QLatin1String("gguf")   ? tr("GGUF files (*.gguf)")
                           : format == QLatin1String("hdf5") ? tr("QuantScope projects (*.qsproj.h5 *.h5)")
                                                             : QString();
    const QString path = QFileDialog::getSaveFileName(this, tr("Export to"), m_out->text(), filter);
    if (!path.isEmpty())
        m_out->setText(path);
}

ModelExportRequest ModelExportDialog::request() const
{
    ModelExportRequest r;
    r.format = m_format->currentData().toString();
    r.ggufType = m_type->currentData().toString();
    r.checkpointFormat = m_checkpoint->currentData().toString();
    r.out = m_out->text().trimmed();
    return r;
}

} // namespace qs::ui
