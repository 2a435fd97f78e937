#pragma once
// File › Export…: writes the open model, or the selected finished run, as GGUF (llama.cpp), a GPTQ
// checkpoint folder or an HDF5 project, through the same core exporters as `quantscope-cli export`.
// A run that has no RUN_DIR on disk (quantized in this session) is first written to a temporary RUN_DIR,
// exported from there and the temporary folder removed, so the GUI and the CLI take the same path.

#include <QDialog>
#include <QString>

#include <functional>

#include "JobRunner.h"

class QComboBox;
class QLineEdit;
class QLabel;

namespace qs::ui {

class ModelSession;
class RunsModel;

struct ModelExportRequest
{
    QString format = QStringLiteral("gguf"); // "gguf" | "gptq" | "hdf5"
    QString ggufType;                        // empty: per tensor from the run (float model: F16)
    QString checkpointFormat = QStringLiteral("gptq"); // gptq: "gptq" (v1) | "gptq_v2"
    QString out;
};

// Starts the export job (key "export"; a new export supersedes a running one). runId 0 exports the open
// model itself. log(level, text) receives the summary, notes and errors (level 0 info, 1 warning, 2 error).
// Returns the job id, or 0 when nothing can be exported (no model, or the run is not finished).
JobId startModelExport(JobRunner *runner, ModelSession *session, RunsModel *runs, int runId,
                       const ModelExportRequest &request, std::function<void(int level, const QString &)> log);

class ModelExportDialog : public QDialog
{
    Q_OBJECT
public:
    // sourceLabel describes what is exported; isRun enables the run-only choices (GPTQ, "from the run").
    ModelExportDialog(const QString &sourceLabel, bool isRun, const QString &suggestedBase, QWidget *parent = nullptr);
    ModelExportRequest request() const;

private:
    void updateFields();
    void browse();

    bool m_isRun;
    QString m_base;
    QComboBox *m_format;
    QComboBox *m_type;
    QComboBox *m_checkpoint;
    QLineEdit *m_out;
};

} // namespace qs::ui
