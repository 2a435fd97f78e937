#include "RunsModel.h"

#include <QColor>
#include <QMetaObject>
#include <QPointer>

#include <cmath>

#include "ModelSession.h"
#include "common/Error.h"

namespace qs::ui {

QString methodColorName(const std::string &method)
{
    if (method == "rtn")
        return QStringLiteral("#4a7fb5");
    if (method == "gptq")
        return QStringLiteral("#2e9e5b");
    if (method == "awq")
        return QStringLiteral("#d98b2b");
    if (method == "smoothquant")
        return QStringLiteral("#8e5bb5");
    if (method == "zeroquant")
        return QStringLiteral("#c94f7c");
    if (method == "efficientqat")
        return QStringLiteral("#b5452e");
    return QStringLiteral("#777777");
}

RunsModel::RunsModel(ModelSession *session, QObject *parent) : QAbstractTableModel(parent), m_session(session)
{
    connect(session, &ModelSession::modelOpened, this, [this] {
        for (auto it = m_jobs.cbegin(); it != m_jobs.cend(); ++it)
            m_session->runner()->cancel(it.value());
        beginResetModel();
        m_runs.clear();
        endResetModel();
    });
}

int RunsModel::startRun(const nlohmann::json &planJson, const core::PipelineOptions &options, const QString &name)
{
    const std::shared_ptr<const core::Model> model = m_session->model();
    if (!model)
        return 0;
    core::Plan plan;
    int planned = 0;
    try {
        // Resolving is cheap (names and shapes only) and catches plan errors before a job starts.
        plan = core::Plan::fromJson(planJson);
        for (const core::PlannedLayer &l : plan.resolve(*model))
            planned += l.quantize ? 1 : 0;
    } catch (const core::Error &e) {
        Q_EMIT message(QString::fromUtf8(e.what()));
        return 0;
    }
    auto run = std::make_shared<Run>();
    run->id = m_nextId++;
    run->name = name.isEmpty() ? tr("Run %1").arg(run->id) : name;
    run->plannedLayers = planned;
    beginInsertRows({}, int(m_runs.size()), int(m_runs.size()));
    m_runs.append(run);
    endInsertRows();

    const int id = run->id;
    QPointer<RunsModel> self(this);
    // Layer and block results arrive on the worker thread; they are copied to the GUI thread.
    auto onLayer = [self, id](const core::LayerResult &r) {
        QMetaObject::invokeMethod(self, [self, id, r] {
            if (!self)
                return;
            const int row = self->rowOf(id);
            if (row < 0)
                return;
            self->m_runs[row]->layers.push_back(r);
            Q_EMIT self->layerDone(id, int(self->m_runs[row]->layers.size()));
        }, Qt::QueuedConnection);
    };
    auto onBlock = [self, id](int block, double err) {
        QMetaObject::invokeMethod(self, [self, id, block, err] {
            if (!self)
                return;
            const int row = self->rowOf(id);
            if (row >= 0)
                self->m_runs[row]->blocks.emplace_back(block, err);
        }, Qt::QueuedConnection);
    };
    auto onLoss = [self, id](const core::TrainingLossEvent &e) {
        QMetaObject::invokeMethod(self, [self, id, e] {
            if (!self)
                return;
            const int row = self->rowOf(id);
            if (row < 0)
                return;
            self->m_runs[row]->losses.push_back(e);
            Q_EMIT self->trainingLoss(id);
        }, Qt::QueuedConnection);
    };
    const JobId job = m_session->runner()->run<core::QuantRun>(
        tr("Quantize: %1").arg(run->name), QString(),
        [model, plan, options, onLayer, onBlock, onLoss](core::Progress &progress) {
            core::PipelineCallbacks callbacks;
            callbacks.onLayerDone = onLayer;
            callbacks.onBlockDone = onBlock;
            callbacks.onTrainingLoss = onLoss;
            return core::runQuantization(model, plan, options, callbacks, progress);
        },
        [this, id](std::shared_ptr<const core::QuantRun> result) {
            const int row = rowOf(id);
            if (row < 0)
                return;
            m_runs[row]->result = std::move(result);
            m_runs[row]->state = State::Done;
            m_jobs.remove(id);
            touch(id);
            Q_EMIT runFinished(id);
        },
        [this, id](const QString &error) {
            const int row = rowOf(id);
            if (row < 0)
                return;
            m_runs[row]->state = State::Failed;
            m_runs[row]->error = error;
            m_jobs.remove(id);
            touch(id);
            Q_EMIT runFinished(id);
        });
    m_jobs.insert(id, job);
    connect(m_session->runner(), &JobRunner::cancelled, this, [this, id, job](JobId cancelled) {
        if (cancelled != job)
            return;
        const int row = rowOf(id);
        if (row < 0)
            return;
        m_runs[row]->state = State::Cancelled;
        m_jobs.remove(id);
        touch(id);
        Q_EMIT runFinished(id);
    });
    Q_EMIT runStarted(id);
    return id;
}

int RunsModel::addFinishedRun(const QString &name, std::shared_ptr<const core::QuantRun> result, const QString &runDir,
                              bool runDirMissing)
{
    if (!result)
        return 0;
    auto run = std::make_shared<Run>();
    run->id = m_nextId++;
    run->name = name.isEmpty() ? tr("Run %1").arg(run->id) : name;
    run->state = State::Done;
    run->layers = result->layers;
    for (const core::BlockResult &b : result->blocks)
        run->blocks.emplace_back(b.block, b.cumulativeError);
    run->plannedLayers = int(result->layers.size());
    run->result = std::move(result);
    run->runDir = runDir;
    run->runDirMissing = runDirMissing;
    beginInsertRows({}, int(m_runs.size()), int(m_runs.size()));
    m_runs.append(run);
    endInsertRows();
    Q_EMIT runFinished(run->id);
    return run->id;
}

void RunsModel::cancelRun(int id)
{
    if (m_jobs.contains(id))
        m_session->runner()->cancel(m_jobs.value(id));
}

std::shared_ptr<const RunsModel::Run> RunsModel::run(int id) const
{
    const int row = rowOf(id);
    return row < 0 ? nullptr : m_runs[row];
}

int RunsModel::rowOf(int id) const
{
    for (int i = 0; i < m_runs.size(); ++i)
        if (m_runs[i]->id == id)
            return i;
    return -1;
}

void RunsModel::touch(int id)
{
    const int row = rowOf(id);
    if (row >= 0)
        Q_EMIT dataChanged(index(row, 0), index(row, ColumnCount - 1));
}

int RunsModel::rowCount(const QModelIndex &parent) const { return parent.isValid() ? 0 : int(m_runs.size()); }
int RunsModel::columnCount(const QModelIndex &parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant RunsModel::data(const QModelIndex &index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Run &r = *m_runs[index.row()];
    const core::QuantRun *q = r.result.get();
    const core::RunEvaluation *e = q && q->evaluation ? &*q->evaluation : nullptr;
    auto number = [&](double v, int decimals) -> QVariant {
        if (role == SortRole)
            return v;
        if (role == Qt::DisplayRole)
            return std::isnan(v) ? QString() : QString::number(v, 'f', decimals);
        return {};
    };
    if (role == Qt::TextAlignmentRole && index.column() >= BpwColumn)
        return QVariant(Qt::AlignRight | Qt::AlignVCenter);
    switch (index.column()) {
    case NameColumn:
        if (role == Qt::DisplayRole || role == SortRole)
            return r.name;
        if (role == Qt::ToolTipRole && q)
            return QString::fromStdString(q->plan.toJson().dump(2));
        return {};
    case StateColumn:
        if (role == Qt::ToolTipRole)
            return r.runDirMissing ? tr("The run directory %1 is missing; the metrics are the copy stored in the project").arg(r.runDir)
                                   : r.error;
        if (role != Qt::DisplayRole && role != SortRole)
            return {};
        switch (r.state) {
        case State::Running: return tr("running (%1/%2 layers)").arg(r.layers.size()).arg(r.plannedLayers);
        case State::Done: return r.runDirMissing ? tr("done (missing run dir)") : tr("done");
        case State::Failed: return tr("failed");
        case State::Cancelled: return tr("cancelled");
        }
        return {};
    case BpwColumn: return number(q ? q->bitsPerWeight : NAN, 3);
    case PerplexityColumn: return number(e ? e->perplexity : NAN, 4);
    case KldColumn: return number(e && e->hasKld ? e->kldMean : NAN, 5);
    case Top1Column: return number(e && e->hasKld ? e->top1Agreement : NAN, 4);
    case SecondsColumn: return number(q ? q->seconds : NAN, 1);
    default: return {};
    }
}

QVariant RunsModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    switch (section) {
    case NameColumn: return tr("Run");
    case StateColumn: return tr("State");
    case BpwColumn: return tr("Bits/weight");
    case PerplexityColumn: return tr("Perplexity");
    case KldColumn: return tr("KLD");
    case Top1Column: return tr("Top-1");
    case SecondsColumn: return tr("Seconds");
    default: return {};
    }
}

} // namespace qs::ui
