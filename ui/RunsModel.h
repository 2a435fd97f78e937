#pragma once
// Quantization runs of the open model: starts the pipeline as a job, receives per-layer results live
// (posted from the worker thread), keeps each finished run (a derived artifact with provenance, not an
// undo step), and lists them as a table: name, plan summary, bits per weight, perplexity, KLD, top-1.

#include <QAbstractTableModel>
#include <QList>

#include <memory>
#include <vector>

#include "JobRunner.h"
#include "quant/Pipeline.h"

namespace qs::ui {

class ModelSession;

class RunsModel : public QAbstractTableModel
{
    Q_OBJECT
public:
    enum Column { NameColumn, StateColumn, BpwColumn, PerplexityColumn, KldColumn, Top1Column, SecondsColumn, ColumnCount };
    enum Role { SortRole = Qt::UserRole + 1 };
    enum class State { Running, Done, Failed, Cancelled };

    struct Run
    {
        int id = 0;
        QString name;
        State state = State::Running;
        QString error;
        std::vector<core::LayerResult> layers; // live, in finishing order
        std::vector<std::pair<int, double>> blocks; // (block, cumulative error) live
        std::vector<core::TrainingLossEvent> losses; // training methods (EfficientQAT), live
        int plannedLayers = 0;
        std::shared_ptr<const core::QuantRun> result; // when done
        QString runDir;             // its RUN_DIR when it has one (runs restored from a project)
        bool runDirMissing = false; // the recorded RUN_DIR is gone: the metrics shown are the project's copy
    };

    RunsModel(ModelSession *session, QObject *parent = nullptr);

    // Starts a run of the open model with a plan (cli.md JSON) and options; returns its id (0 when no model).
    int startRun(const nlohmann::json &planJson, const core::PipelineOptions &options, const QString &name);
    void cancelRun(int id);
    // Adds a finished run without running anything (a run restored from a project); returns its id.
    int addFinishedRun(const QString &name, std::shared_ptr<const core::QuantRun> result, const QString &runDir = {},
                       bool runDirMissing = false);

    const QList<std::shared_ptr<Run>> &runs() const { return m_runs; }
    std::shared_ptr<const Run> run(int id) const;

    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

Q_SIGNALS:
    void runStarted(int id);
    void layerDone(int id, int layerCount);
    void trainingLoss(int id); // a training method reported a loss (posted, coalesced per event-loop turn)
    void runFinished(int id); // done, failed or cancelled
    void message(const QString &text);

private:
    int rowOf(int id) const;
    void touch(int id);

    ModelSession *m_session;
    QList<std::shared_ptr<Run>> m_runs;
    QHash<int, JobId> m_jobs;
    int m_nextId = 1;
};

QString methodColorName(const std::string &method); // stable colours per method for plots and tables

} // namespace qs::ui
