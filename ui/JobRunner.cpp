#include "JobRunner.h"

#include <QFutureWatcher>
#include <QPromise>
#include <QtConcurrent/QtConcurrentRun>

#include <atomic>
#include <mutex>

#include "common/Error.h"

namespace qs::ui {

namespace {

constexpr int kProgressScale = 10000;

// Adapts core::Progress to a QPromise. advance() may come from several OpenMP threads: the counter is
// atomic and reports are throttled so the GUI thread sees at most ~25 updates a second.
class PromiseProgress final : public core::Progress
{
public:
    explicit PromiseProgress(QPromise<JobOutcome> &promise) : m_promise(promise)
    {
        m_promise.setProgressRange(0, kProgressScale);
        m_clock.start();
    }

    void setTotal(double total) override
    {
        m_total.store(total > 0 ? total : 0.0);
        m_done.store(0.0);
        report(true);
    }
    void advance(double amount) override
    {
        double cur = m_done.load(std::memory_order_relaxed);
        while (!m_done.compare_exchange_weak(cur, cur + amount, std::memory_order_relaxed)) {
        }
        report(false);
    }
    void message(std::string_view text) override
    {
        {
            std::lock_guard lock(m_mutex);
            m_text = QString::fromUtf8(text.data(), qsizetype(text.size()));
        }
        report(true);
    }
    bool isCancelled() const override { return m_promise.isCanceled(); }

private:
    void report(bool force)
    {
        std::lock_guard lock(m_mutex);
        const qint64 now = m_clock.elapsed();
        if (!force && now - m_lastReport < 40)
            return;
        m_lastReport = now;
        const double total = m_total.load();
        const double frac = total > 0 ? std::clamp(m_done.load() / total, 0.0, 1.0) : 0.0;
        m_promise.setProgressValueAndText(int(frac * kProgressScale), m_text);
    }

    QPromise<JobOutcome> &m_promise;
    std::atomic<double> m_total{0.0};
    std::atomic<double> m_done{0.0};
    std::mutex m_mutex;
    QString m_text;
    QElapsedTimer m_clock;
    qint64 m_lastReport = -1000;
};

} // namespace

struct JobRunner::Job
{
    QString title;
    QString key;
    QFutureWatcher<JobOutcome> *watcher = nullptr;
    std::function<void(std::shared_ptr<const void>)> deliver;
    std::function<void(const QString &)> onFailed;
    QElapsedTimer clock;
    bool cancelRequested = false;
};

JobRunner::JobRunner(QObject *parent, int maxThreads) : QObject(parent)
{
    m_pool.setMaxThreadCount(std::max(1, maxThreads));
}

JobRunner::~JobRunner()
{
    cancelAll();
    waitForDone();
}

JobId JobRunner::start(const QString &title, const QString &key,
                       std::function<std::shared_ptr<const void>(core::Progress &)> work,
                       std::function<void(std::shared_ptr<const void>)> deliver,
                       std::function<void(const QString &)> onFailed)
{
    if (!key.isEmpty()) {
        for (auto it = m_jobs.cbegin(); it != m_jobs.cend(); ++it)
            if (it.value()->key == key)
                cancel(it.key()); // superseded: its result will be dropped
    }

    const JobId id = m_nextId++;
    auto job = std::make_shared<Job>();
    job->title = title;
    job->key = key;
    job->deliver = std::move(deliver);
    job->onFailed = std::move(onFailed);
    job->watcher = new QFutureWatcher<JobOutcome>(this);
    job->clock.start();
    m_jobs.insert(id, job);

    connect(job->watcher, &QFutureWatcherBase::finished, this, [this, id] { onWatcherFinished(id); });
    connect(job->watcher, &QFutureWatcherBase::progressValueChanged, this,
            [this, id](int v) { onProgress(id, v, QString()); });
    connect(job->watcher, &QFutureWatcherBase::progressTextChanged, this,
            [this, id](const QString &t) { onProgress(id, -1, t); });

    QFuture<JobOutcome> future = QtConcurrent::run(&m_pool, [work = std::move(work)](QPromise<JobOutcome> &promise) {
        JobOutcome outcome;
        PromiseProgress progress(promise);
        try {
            progress.throwIfCancelled();
            outcome.value = work(progress);
        } catch (const core::Cancelled &) {
            outcome.cancelled = true;
        } catch (const core::Error &e) {
            outcome.error = QString::fromUtf8(e.what());
        } catch (const std::bad_alloc &) {
            outcome.error = QStringLiteral("out of memory");
        } catch (const std::exception &e) {
            outcome.error = QStringLiteral("internal error: ") + QString::fromUtf8(e.what());
        } catch (...) {
            outcome.error = QStringLiteral("internal error: unknown exception");
        }
        promise.addResult(std::move(outcome));
    });
    job->watcher->setFuture(future);
    Q_EMIT started(id, title);
    return id;
}

void JobRunner::onProgress(JobId id, int value, const QString &text)
{
    auto it = m_jobs.find(id);
    if (it == m_jobs.end())
        return;
    const auto &job = it.value();
    const int v = value >= 0 ? value : job->watcher->progressValue();
    const QString msg = text.isNull() ? job->watcher->progressText() : text;
    const double frac = double(v) / kProgressScale;
    const double elapsed = job->clock.elapsed() / 1000.0;
    const double eta = (frac > 0.02 && elapsed > 0.5) ? elapsed * (1.0 - frac) / frac : -1.0;
    Q_EMIT progress(id, frac, msg, eta);
}

void JobRunner::onWatcherFinished(JobId id)
{
    auto it = m_jobs.find(id);
    if (it == m_jobs.end())
        return;
    const std::shared_ptr<Job> job = it.value();
    m_jobs.erase(it);
    job->watcher->deleteLater();

    const QFuture<JobOutcome> future = job->watcher->future();
    JobOutcome outcome;
    if (future.resultCount() > 0)
        outcome = future.result();
    else
        outcome.cancelled = true; // cancelled before it started: the body never ran

    if (job->cancelRequested || outcome.cancelled) {
        Q_EMIT cancelled(id);
    } else if (!outcome.error.isEmpty()) {
        if (job->onFailed)
            job->onFailed(outcome.error);
        Q_EMIT failed(id, outcome.error);
    } else {
        if (job->deliver)
            job->deliver(outcome.value);
        Q_EMIT finished(id);
    }
}

void JobRunner::cancel(JobId id)
{
    auto it = m_jobs.find(id);
    if (it == m_jobs.end())
        return;
    it.value()->cancelRequested = true;
    it.value()->watcher->future().cancel();
}

void JobRunner::cancelAll()
{
    for (auto it = m_jobs.cbegin(); it != m_jobs.cend(); ++it) {
        it.value()->cancelRequested = true;
        it.value()->watcher->future().cancel();
    }
}

void JobRunner::waitForDone()
{
    m_pool.waitForDone();
}

bool JobRunner::isRunning(JobId id) const
{
    return m_jobs.contains(id);
}

QString JobRunner::title(JobId id) const
{
    auto it = m_jobs.constFind(id);
    return it == m_jobs.cend() ? QString() : it.value()->title;
}

} // namespace qs::ui
