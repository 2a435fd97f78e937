#include "CliSupport.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <unistd.h>

namespace qs::cli {

namespace {
std::atomic<bool> g_interrupted{false};
extern "C" void onSignal(int) { g_interrupted.store(true); }
} // namespace

void installSignalHandlers()
{
    std::signal(SIGINT, onSignal);
    std::signal(SIGTERM, onSignal);
}

bool interrupted() { return g_interrupted.load(); }

Args::Args(const std::string &command, int argc, char **argv, int first, const std::vector<OptionSpec> &options)
    : m_command(command)
{
    auto findSpec = [&](const std::string &name) -> const OptionSpec * {
        for (const OptionSpec &o : options)
            if (o.name == name)
                return &o;
        return nullptr;
    };
    bool onlyPositional = false;
    for (int i = first; i < argc; ++i) {
        std::string a = argv[i];
        if (onlyPositional || a.size() < 2 || a[0] != '-' || a == "-") {
            m_positional.push_back(a);
            continue;
        }
        if (a == "--") {
            onlyPositional = true;
            continue;
        }
        std::string name = a.substr(a[1] == '-' ? 2 : 1);
        std::optional<std::string> inlineValue;
        if (const auto eq = name.find('='); eq != std::string::npos) {
            inlineValue = name.substr(eq + 1);
            name = name.substr(0, eq);
        }
        const OptionSpec *spec = findSpec(name);
        if (!spec)
            throw UsageError(m_command + ": unknown option '" + a + "' (see quantscope-cli " + m_command + " --help)");
        if (spec->takesValue) {
            if (inlineValue) {
                m_values[name] = *inlineValue;
            } else {
                if (i + 1 >= argc)
                    throw UsageError(m_command + ": option '--" + name + "' needs a value");
                m_values[name] = argv[++i];
            }
        } else {
            if (inlineValue)
                throw UsageError(m_command + ": option '--" + name + "' takes no value");
            m_values[name] = "1";
        }
    }
}

std::string Args::value(const std::string &name, const std::string &fallback) const
{
    auto it = m_values.find(name);
    return it == m_values.end() ? fallback : it->second;
}

std::string Args::requireValue(const std::string &name) const
{
    auto it = m_values.find(name);
    if (it == m_values.end() || it->second.empty())
        throw UsageError(m_command + ": option '--" + name + "' is required");
    return it->second;
}

std::string Args::requirePositional(size_t index, const std::string &what) const
{
    if (index >= m_positional.size())
        throw UsageError(m_command + ": missing " + what);
    return m_positional[index];
}

int Args::intValue(const std::string &name, int fallback, int min, int max) const
{
    if (!has(name))
        return fallback;
    const std::string v = value(name);
    try {
        size_t used = 0;
        const long long x = std::stoll(v, &used);
        if (used != v.size() || x < min || x > max)
            throw std::out_of_range("range");
        return int(x);
    } catch (const std::exception &) {
        throw UsageError(m_command + ": option '--" + name + "' expects an integer in [" + std::to_string(min) +
                         ", " + std::to_string(max) + "], got '" + v + "'");
    }
}

double Args::doubleValue(const std::string &name, double fallback, double min, double max) const
{
    if (!has(name))
        return fallback;
    const std::string v = value(name);
    try {
        size_t used = 0;
        const double x = std::stod(v, &used);
        if (used != v.size() || !std::isfinite(x) || x < min || x > max)
            throw std::out_of_range("range");
        return x;
    } catch (const std::exception &) {
        char buf[128];
        std::snprintf(buf, sizeof buf, "[%g, %g]", min, max);
        throw UsageError(m_command + ": option '--" + name + "' expects a number in " + buf + ", got '" + v + "'");
    }
}

struct ConsoleProgress::State
{
    bool quiet = false;
    bool tty = false;
    std::atomic<double> total{0.0};
    std::atomic<double> done{0.0};
    std::mutex mutex;
    std::string text;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point lastDraw{};
    bool drewBar = false;
};

ConsoleProgress::ConsoleProgress(bool quiet) : m_state(new State)
{
    m_state->quiet = quiet;
    m_state->tty = ::isatty(STDERR_FILENO) == 1;
}

ConsoleProgress::~ConsoleProgress()
{
    finish();
    delete m_state;
}

void ConsoleProgress::setTotal(double total)
{
    m_state->total.store(total);
    m_state->done.store(0.0);
    draw(true);
}

void ConsoleProgress::advance(double amount)
{
    double cur = m_state->done.load(std::memory_order_relaxed);
    while (!m_state->done.compare_exchange_weak(cur, cur + amount, std::memory_order_relaxed)) {
    }
    draw(false);
}

void ConsoleProgress::message(std::string_view text)
{
    {
        std::lock_guard lock(m_state->mutex);
        m_state->text.assign(text);
    }
    draw(true);
}

bool ConsoleProgress::isCancelled() const { return interrupted(); }

void ConsoleProgress::draw(bool force)
{
    if (m_state->quiet)
        return;
    std::lock_guard lock(m_state->mutex);
    const auto now = std::chrono::steady_clock::now();
    const double sinceStart = std::chrono::duration<double>(now - m_state->start).count();
    const double sinceDraw = std::chrono::duration<double>(now - m_state->lastDraw).count();
    // Work shorter than a second shows nothing; a terminal redraws ~10/s, a pipe gets a line a second.
    // A pipe gets at most one line a second even for new messages; a terminal redraws at once for them.
    if (sinceStart < 1.0 || ((!force || !m_state->tty) && sinceDraw < (m_state->tty ? 0.1 : 1.0)))
        return;
    m_state->lastDraw = now;
    const double total = m_state->total.load();
    const double frac = total > 0 ? std::min(1.0, m_state->done.load() / total) : 0.0;
    const double eta = frac > 0.01 ? sinceStart * (1 - frac) / frac : -1;
    char etaText[32] = "";
    if (eta >= 0)
        std::snprintf(etaText, sizeof etaText, " ETA %.0fs", eta);
    if (m_state->tty) {
        const int width = 30;
        const int filled = int(frac * width);
        std::string bar(size_t(filled), '#');
        bar.resize(width, '-');
        std::fprintf(stderr, "\r[%s] %5.1f%%%s %s\033[K", bar.c_str(), frac * 100, etaText, m_state->text.c_str());
        m_state->drewBar = true;
    } else {
        std::fprintf(stderr, "progress %5.1f%%%s %s\n", frac * 100, etaText, m_state->text.c_str());
    }
    std::fflush(stderr);
}

void ConsoleProgress::finish()
{
    std::lock_guard lock(m_state->mutex);
    if (m_state->drewBar) {
        std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
        m_state->drewBar = false;
    }
}

std::string formatBytes(double bytes)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
    return buf;
}

} // namespace qs::cli
