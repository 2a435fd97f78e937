#pragma once
// The progress/cancel interface every long core function takes (house style, practice 2).
// The CLI implements it with a terminal bar (ConsoleProgress), the GUI adapts it to QPromise (ui/JobRunner).
// advance() and isCancelled() may be called from several worker threads at once: implementations must be
// thread-safe for those two. setTotal() and message() are called from the thread that runs the job.

#include <atomic>
#include <string_view>

#include "common/Error.h"

namespace qs::core {

class Progress
{
public:
    virtual ~Progress() = default;

    virtual void setTotal(double total) = 0;        // units of work for the current phase; resets done to 0
    virtual void advance(double amount = 1.0) = 0;  // thread-safe
    virtual void message(std::string_view text) = 0;
    virtual bool isCancelled() const = 0;           // thread-safe

    void throwIfCancelled() const
    {
        if (isCancelled())
            throw Cancelled();
    }
};

// Ignores progress and is never cancelled, unless cancel() is called (handy in tests).
class NullProgress final : public Progress
{
public:
    void setTotal(double) override {}
    void advance(double) override {}
    void message(std::string_view) override {}
    bool isCancelled() const override { return m_cancelled.load(std::memory_order_relaxed); }
    void cancel() { m_cancelled.store(true); }

private:
    std::atomic<bool> m_cancelled{false};
};

} // namespace qs::core
