#include "common/AtomicFolder.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sys/stat.h>
#include <vector>

#include "common/Error.h"

namespace qs::core {

namespace fs = std::filesystem;

namespace {

// The process umask. POSIX can only read it by setting it, so it is set to the most restrictive value for
// the moment in between: a file another thread creates then is private rather than open to everyone.
mode_t currentUmask()
{
    const mode_t mask = ::umask(0077);
    ::umask(mask);
    return mask;
}

} // namespace

AtomicFolder::AtomicFolder(
    std::string target, std::string errorName, std::string noun, std::string previousNoun, Access access)
    : m_target(std::move(target))
    , m_errorName(std::move(errorName))
    , m_noun(std::move(noun))
    , m_previousNoun(previousNoun.empty() ? m_noun : std::move(previousNoun))
{
    std::string tmpl = m_target + ".tmp-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
        m_done = true;
        fail(m_errorName, std::string("cannot create a temporary folder beside it: ") + std::strerror(errno));
    }
    m_tempPath = buf.data();
    if (access == Access::Normal && ::chmod(m_tempPath.c_str(), 0777 & ~currentUmask()) != 0) {
        const int err = errno;
        discard();
        fail(m_errorName,
            "cannot set the permissions of the temporary folder " + m_tempPath + ": " + std::strerror(err));
    }
}

AtomicFolder::~AtomicFolder()
{
    discard();
}

void AtomicFolder::discard() noexcept
{
    if (!m_done) {
        std::error_code ec;
        fs::remove_all(m_tempPath, ec);
        m_done = true;
    }
}

void AtomicFolder::commit()
{
    if (m_done)
        fail(m_errorName, "commit after the folder was committed or discarded");
    // A previous folder is moved aside first and removed once the new one is there.
    std::error_code ec;
    std::string aside;
    if (fs::exists(m_target, ec)) {
        aside = m_tempPath + ".old";
        fs::rename(m_target, aside, ec);
        if (ec)
            fail(m_errorName, "cannot move the previous " + m_previousNoun + " aside: " + ec.message());
    }
    fs::rename(m_tempPath, m_target, ec);
    if (ec) {
        std::error_code ec2;
        if (!aside.empty())
            fs::rename(aside, m_target, ec2);
        fail(m_errorName, "cannot move the finished " + m_noun + " into place: " + ec.message());
    }
    m_done = true;
    if (!aside.empty())
        fs::remove_all(aside, ec);
}

} // namespace qs::core
