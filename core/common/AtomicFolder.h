#pragma once
// Write-into-a-temporary-folder-then-rename, the folder counterpart of AtomicFile: a reader never sees a
// half-written run directory, checkpoint or report, and a failed or cancelled write leaves nothing behind
// (house style, practice 6).
//
// The temporary is "<target>.tmp-XXXXXX" beside the target (rename is only atomic within one file
// system), made by mkdtemp (private, 0700) and then given the permissions mkdir would give a new folder
// (0777 & ~umask), so a finished run, checkpoint or report is as readable as any other folder the user
// makes; Access::Private keeps it 0700. commit() renames it onto
// the target; an existing target is first moved aside to "<temporary>.old", put back if the rename fails,
// and removed once the new folder is in place. The destructor removes an uncommitted temporary, so an
// exception (including Cancelled) thrown between construction and commit cleans up by itself. Whether
// the target may be replaced at all is for the caller to check beforehand.

#include <string>

namespace qs::core {

class AtomicFolder
{
public:
    enum class Access {
        Normal, // 0777 & ~umask, like mkdir
        Private, // 0700 (mkdtemp's mode), for folders that must not be readable by others
    };

    // errorName: what error messages start with (the path as the user gave it). noun: what the folder is
    // called in the rename errors ("run": "cannot move the finished run into place: ..."); previousNoun,
    // when not empty, names the folder being replaced instead ("cannot move the previous folder aside").
    // access: the temporary's (and so the final folder's) permissions, set at once, before anything is
    // written into it. Creates the temporary; throws Error("<errorName>: cannot create a temporary folder
    // beside it: ...").
    AtomicFolder(std::string target, std::string errorName, std::string noun, std::string previousNoun = {},
        Access access = Access::Normal);
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
