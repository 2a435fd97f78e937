#pragma once
// Adapts JobRunner signals to a table: title, state, progress, message, ETA. Finished jobs stay listed
// (with their outcome) until cleared, so a failure remains readable after it happened.

#include <QAbstractTableModel>
#include <QElapsedTimer>
#include <QVector>

#include "JobRunner.h"

namespace qs::ui {

class JobListModel : public QAbstractTableModel
{
    Q_OBJECT
public:
    enum Column { TitleColumn, StateColumn, ProgressColumn, EtaColumn, MessageColumn, ColumnCount };
    enum Role { JobIdRole = Qt::UserRole + 1, FractionRole, RunningRole };
    enum class State { Running, Finished, Failed, Cancelled };

    explicit JobListModel(JobRunner *runner, QObject *parent = nullptr);

    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

    void clearEnded();
    JobId jobAt(int row) const;

private:
    struct Entry
    {
        JobId id = 0;
        QString title;
        State state = State::Running;
        double fraction = 0.0;
        QString message;
        double eta = -1.0;
        QElapsedTimer clock; // since the job started
    };
    int rowOf(JobId id) const;
    void update(JobId id, const std::function<void(Entry &)> &change);

    QVector<Entry> m_entries;
};

QString formatDuration(double seconds);

} // namespace qs::ui
