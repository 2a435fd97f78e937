#pragma once
// The one way to run long core work from the GUI (house style, practice 3).
//
// A job is a core function taking qs::core::Progress&. It runs on the runner's own QThreadPool through
// QtConcurrent with a QPromise; progress (fraction, message, ETA) arrives as signals on the GUI thread.
// Each job ends with exactly one of finished / failed / cancelled. Results cross threads as
// std::shared_ptr<const T>. Starting a job with the same non-empty key as a running one supersedes it: the
// older job is cancelled and its result dropped. The destructor cancels every job and waits for them.

#include <QElapsedTimer>
#include <QHash>
#include <QObject>
#include <QString>
#include <QThreadPool>

#include <functional>
#include <memory>

#include "common/Progress.h"

template<typename T>
class QFutureWatcher;

namespace qs::ui {

using JobId = quint64;

struct JobOutcome
{
    std::shared_ptr<const void> value;
    QString error;     // non-empty: the job failed with this readable message
    bool cancelled = false;
};

class JobRunner : public QObject
{
    Q_OBJECT
public:
    explicit JobRunner(QObject *parent = nullptr, int maxThreads = 2);
    ~JobRunner() override;

    // Runs work(progress) in the pool. onResult runs on the GUI thread with the result, only if the job
    // finished and was neither cancelled nor superseded; onFailed runs with the readable error if it failed.
    template<typename T>
    JobId run(const QString &title, const QString &key, std::function<T(core::Progress &)> work,
              std::function<void(std::shared_ptr<const T>)> onResult = {},
              std::function<void(const QString &error)> onFailed = {})
    {
        auto erased = [work = std::move(work)](core::Progress &p) -> std::shared_ptr<const void> {
            return std::make_shared<const T>(work(p));
        };
        std::function<void(std::shared_ptr<const void>)> deliver;
        if (onResult)
            deliver = [onResult = std::move(onResult)](std::shared_ptr<const void> v) {
                onResult(std::static_pointer_cast<const T>(std::move(v)));
            };
        return start(title, key, std::move(erased), std::move(deliver), std::move(onFailed));
    }

    void cancel(JobId id);
    void cancelAll();
    void waitForDone();
    bool isRunning(JobId id) const;
    int runningCount() const { return int(m_jobs.size()); }
    QString title(JobId id) const;

Q_SIGNALS:
    void started(qs::ui::JobId id, const QString &title);
    void progress(qs::ui::JobId id, double fraction, const QString &message, double etaSeconds);
    void finished(qs::ui::JobId id);
    void failed(qs::ui::JobId id, const QString &error);
    void cancelled(qs::ui::JobId id);

private:
    struct Job;
    JobId start(const QString &title, const QString &key,
                std::function<std::shared_ptr<const void>(core::Progress &)> work,
                std::function<void(std::shared_ptr<const void>)> deliver,
                std::function<void(const QString &)> onFailed);
    void onWatcherFinished(JobId id);
    void onProgress(JobId id, int value, const QString &text);

    QThreadPool m_pool;
    QHash<JobId, std::shared_ptr<Job>> m_jobs;
    JobId m_nextId = 1;
};

} // namespace qs::ui
