#pragma once
// HDF5 plumbing shared by the core's HDF5 formats (stats/ActivationStatsH5, export/ProjectH5*): an owning
// identifier, silencing of HDF5's own error printing, and helpers that turn every failed HDF5 call into
// Error("<file>: <what> (HDF5: <reason>)"). Conventions (string and bool types as h5py reads them) follow
// specs/formats.md §6.
//
// Internal to qs_core: it includes <hdf5.h>, which only the core's sources see. Other code talks to the
// formats through their own headers.

#include <cstdint>
#include <hdf5.h>
#include <string>
#include <vector>

namespace qs::core::h5 {

// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle
{
public:
    Handle() = default;
    Handle(hid_t id, herr_t (*close)(hid_t))
        : m_id(id)
        , m_close(close)
    { }
    ~Handle() { reset(); }
    Handle(Handle &&o) noexcept
        : m_id(o.m_id)
        , m_close(o.m_close)
    {
        o.m_id = -1;
    }
    Handle &operator=(Handle &&o) noexcept
    {
        if (this != &o) {
            reset();
            m_id = o.m_id;
            m_close = o.m_close;
            o.m_id = -1;
        }
        return *this;
    }
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;

    hid_t id() const { return m_id; }
    // Closes now and reports whether the close succeeded (for the file, where it flushes).
    bool close()
    {
        const bool ok = m_id < 0 || m_close(m_id) >= 0;
        m_id = -1;
        return ok;
    }

private:
    void reset()
    {
        if (m_id >= 0)
            m_close(m_id);
        m_id = -1;
    }

    hid_t m_id = -1;
    herr_t (*m_close)(hid_t) = nullptr;
};

// Silences HDF5's automatic error-stack printing for the lifetime of the object (per thread in the
// thread-safe library), restoring whatever was installed before; our Error messages carry the detail.
class QuietErrors
{
public:
    QuietErrors()
    {
        H5Eget_auto2(H5E_DEFAULT, &m_func, &m_data);
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    }
    ~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, m_func, m_data); }
    QuietErrors(const QuietErrors &) = delete;
    QuietErrors &operator=(const QuietErrors &) = delete;

private:
    H5E_auto2_t m_func = nullptr;
    void *m_data = nullptr;
};

// The most specific message on HDF5's error stack (then cleared), e.g. "unable to open file".
std::string takeHdf5Message();

// The file being read or written. Every HDF5 call goes through check() or ok() so a failure names the
// file, the object and HDF5's reason.
struct Ctx
{
    std::string path;

    [[noreturn]] void failH5(const std::string &what) const;
    hid_t check(hid_t id, const std::string &what) const;
    void ok(herr_t status, const std::string &what) const;
    // Creates or opens the group loc/name ("cannot create group name" / "missing group name" on failure).
    Handle group(hid_t loc, const std::string &name, bool create) const;
};

// Whether loc has a link called name.
bool exists(hid_t loc, const std::string &name);

// Variable-length UTF-8 strings, NUL-terminated.
Handle stringType(const Ctx &ctx);
// h5py maps an int8 enum {FALSE = 0, TRUE = 1} to numpy bool (formats.md §6).
Handle boolType(const Ctx &ctx);

// --- writing: scalar attributes and a text dataset. where is the object's path, for messages. ---------------

void writeAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, hid_t fileType, hid_t memType,
    const void *value);
void writeAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, const std::string &value);
void writeAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, int64_t value);
void writeAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, uint64_t value);
void writeAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, double value);
void writeBoolAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, bool value);
// A scalar variable-length string dataset loc/name.
void writeStringDataset(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, const std::string &text);

// --- reading --------------------------------------------------------------------------------------------------

// The text of a string attribute (isAttr) or dataset obj whose file type, fileType, the caller has checked
// to be a single string: variable-length UTF-8, or fixed-length (written by other tools) up to the first NUL.
std::string readStringValue(const Ctx &ctx, hid_t obj, hid_t fileType, bool isAttr, const std::string &what);
// Opens attribute loc@name; Error("<where>: missing attribute <name>") when there is none.
Handle openAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name);
// The names of a group's links, in name order.
std::vector<std::string> childNames(const Ctx &ctx, hid_t group, const std::string &where);

} // namespace qs::core::h5
