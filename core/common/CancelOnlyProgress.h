#pragma once
// Relays cancellation only: for work that advances its own units (GPTQ column blocks, AWQ α candidates)
// inside a caller that counts something else (blocks, configurations).

#include "common/Progress.h"

namespace qs::core {

class CancelOnlyProgress final : public Progress
{
public:
    explicit CancelOnlyProgress(const Progress &p)
        : m_p(p)
    { }
    void setTotal(double) override { }
    void advance(double) override { }
    void message(std::string_view) override { }
    bool isCancelled() const override { return m_p.isCancelled(); }

private:
    const Progress &m_p;
};

} // namespace qs::core
