#pragma once
// Write-into-a-temporary-folder-then-rename, the folder counterpart of AtomicFile: a reader never sees a
// half-written run directory, checkpoint or report, and a failed or cancelled write leaves nothing behind
// (house style, practice 6).
//
// The temporary is "<target>.tmp-XXXXXX" beside the target (rename is only atomic within one file
// system), made by mkdtemp and so private (0700) until the caller changes it. commit() renames it onto
// the target; an existing target is first moved aside to "<temporary>.old", put back if the rename fails,
// and removed once the new folder is in place. The destructor removes an uncommitted temporary, so an
// exception (including Cancelled) thrown between construction and commit cleans up by itself. Whether
// the target may be replaced at all is for the caller to check beforehand.

#include <string>

namespace qs::core {

class AtomicFolder
{
public:
    // errorName: what error messages start with (the path as the user gave it). noun: what the folder is
    // called in the rename errors ("run": "cannot move the finished run into place: ..."); previousNoun,
    // when not empty, names the folder being replaced instead ("cannot move the previous folder aside").
    // Creates the temporary; throws Error("<errorName>: cannot create a temporary folder beside it: ...").
    AtomicFolder(std::string target, std::string errorName, std::string noun, std::string previousNoun = {});
    ~AtomicFolder(); // discards unless committed
    AtomicFolder(const AtomicFolder &) = delete;
    AtomicFolder &operator=(const AtomicFolder &) = delete;

    // Renames the temporary onto target(), replacing any folder there. After commit() the object does
    // nothing more. Throws Error (and removes the temporary, keeping a previous target) on failure.
    void commit();
    // Removes the temporary and everything in it now; safe to call more than once.
    void discard() noexcept;

    const std::string &target() const { return m_target; }
    const std::string &tempPath() const { return m_tempPath; }

private:
    std::string m_target;
    std::string m_errorName;
    std::string m_noun;
    std::string m_previousNoun;
    std::string m_tempPath;
    bool m_done = false;
};

} // namespace qs::core
