#include "JobListModel.h"

#include <QColor>

namespace qs::ui {

QString formatDuration(double seconds)
{
    if (seconds < 0)
        return QString();
    const qint64 s = qint64(seconds + 0.5);
    if (s < 60)
        return QStringLiteral("%1 s").arg(s);
    if (s < 3600)
        return QStringLiteral("%1 min %2 s").arg(s / 60).arg(s % 60);
    return QStringLiteral("%1 h %2 min").arg(s / 3600).arg((s % 3600) / 60);
}

JobListModel::JobListModel(JobRunner *runner, QObject *parent) : QAbstractTableModel(parent)
{
    connect(runner, &JobRunner::started, this, [this](JobId id, const QString &title) {
        beginInsertRows({}, int(m_entries.size()), int(m_entries.size()));
        Entry e;
        e.id = id;
        e.title = title;
        e.clock.start();
        m_entries.append(e);
        endInsertRows();
    });
    connect(runner, &JobRunner::progress, this, [this](JobId id, double f, const QString &msg, double eta) {
        update(id, [&](Entry &e) {
            e.fraction = f;
            if (!msg.isEmpty())
                e.message = msg;
            e.eta = eta;
        });
    });
    connect(runner, &JobRunner::finished, this, [this](JobId id) {
        update(id, [](Entry &e) {
            e.state = State::Finished;
            e.fraction = 1.0;
            e.eta = -1;
            // The last progress message ("Statistics: <tensor>") is stale now; say how long it took.
            const double seconds = double(e.clock.elapsed()) / 1000.0;
            e.message = seconds < 1.0 ? tr("finished in %1 s").arg(seconds, 0, 'f', 1)
                                      : tr("finished in %1").arg(formatDuration(seconds));
        });
    });
    connect(runner, &JobRunner::failed, this, [this](JobId id, const QString &err) {
        update(id, [&](Entry &e) {
            e.state = State::Failed;
            e.message = err;
            e.eta = -1;
        });
    });
    connect(runner, &JobRunner::cancelled, this, [this](JobId id) {
        update(id, [](Entry &e) {
            e.state = State::Cancelled;
            e.eta = -1;
        });
    });
}

int JobListModel::rowCount(const QModelIndex &parent) const { return parent.isValid() ? 0 : int(m_entries.size()); }
int JobListModel::columnCount(const QModelIndex &parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant JobListModel::data(const QModelIndex &index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Entry &e = m_entries.at(index.row());
    if (role == JobIdRole)
        return QVariant::fromValue(e.id);
    if (role == FractionRole)
        return e.fraction;
    if (role == RunningRole)
        return e.state == State::Running;
    if (role == Qt::DisplayRole || role == Qt::ToolTipRole) {
        switch (index.column()) {
        case TitleColumn: return e.title;
        case StateColumn:
            switch (e.state) {
            case State::Running: return tr("running");
            case State::Finished: return tr("done");
            case State::Failed: return tr("failed");
            case State::Cancelled: return tr("cancelled");
            }
            return {};
        case ProgressColumn: return QStringLiteral("%1 %").arg(e.fraction * 100.0, 0, 'f', 0);
        case EtaColumn: return e.state == State::Running ? formatDuration(e.eta) : QString();
        case MessageColumn: return e.message;
        default: return {};
        }
    }
    if (role == Qt::ForegroundRole && index.column() == StateColumn && e.state == State::Failed)
        return QColor(Qt::red);
    return {};
}

QVariant JobListModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    switch (section) {
    case TitleColumn: return tr("Job");
    case StateColumn: return tr("State");
    case ProgressColumn: return tr("Progress");
    case EtaColumn: return tr("Remaining");
    case MessageColumn: return tr("Message");
    default: return {};
    }
}

void JobListModel::clearEnded()
{
    for (int row = int(m_entries.size()) - 1; row >= 0; --row) {
        if (m_entries.at(row).state == State::Running)
            continue;
        beginRemoveRows({}, row, row);
        m_entries.removeAt(row);
        endRemoveRows();
    }
}

JobId JobListModel::jobAt(int row) const
{
    return (row >= 0 && row < m_entries.size()) ? m_entries.at(row).id : 0;
}

int JobListModel::rowOf(JobId id) const
{
    for (int i = 0; i < m_entries.size(); ++i)
        if (m_entries.at(i).id == id)
            return i;
    return -1;
}

void JobListModel::update(JobId id, const std::function<void(Entry &)> &change)
{
    const int row = rowOf(id);
    if (row < 0)
        return;
    change(m_entries[row]);
    Q_EMIT dataChanged(index(row, 0), index(row, ColumnCount - 1));
}

} // namespace qs::ui
