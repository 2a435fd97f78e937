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

// The text of a string attribute (isAttr) or dataset obj; what names it in messages ("/x@name"). Error
// unless it holds exactly one string (a scalar dataspace): variable-length UTF-8, or fixed-length (written
// by other tools) up to the first NUL.
std::string readString(const Ctx &ctx, hid_t obj, bool isAttr, const std::string &what);
// Opens attribute loc@name; Error("<where>: missing attribute <name>") when there is none.
Handle openAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name);
// Strict scalar attributes: each throws Error("<file>: <where>@<name> ...") when the attribute is missing,
// holds more than one value, or has the wrong type, instead of letting HDF5 convert (or overrun) quietly.
std::string readStringAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name);
// Integers, or floats that hold a whole number in range (a NaN or 2.5 where a count belongs is an error).
int64_t readInt64Attr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name);
// As readInt64Attr, and not negative.
uint64_t readUInt64Attr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name);
// Any integer or float (NaN and infinities pass: statistics may legitimately hold them).
double readDoubleAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name);
// h5py's bool enum (formats.md §6) or an integer (non-zero is true).
bool readBoolAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name);

// --- datasets ------------------------------------------------------------------------------------------------

// The number of values in a dataspace of dims (1 for rank 0). Error("<file>: <what> is implausibly large
// (...)") when it exceeds maxValues or overflows 64 bits, checked before anything is allocated for it: a
// file can claim any shape without storing the data (an unallocated or compressed dataset).
hsize_t checkedValueCount(const Ctx &ctx, const std::string &what, const std::vector<hsize_t> &dims, hsize_t maxValues);
// The class of a type in words for messages ("integer", "float", "string", ...).
std::string typeClassName(H5T_class_t cls);
// Checks a dataset's element type before it is read: an integer type (integersOnly) or any integer or float
// type, which HDF5 converts. Otherwise Error("<file>: <what> holds <class> values, expected <expected>"),
// expected in the format's words ("float32", "uint64 counts").
void requireNumericDataset(
    const Ctx &ctx, hid_t ds, const std::string &what, bool integersOnly, const std::string &expected);

// The names of a group's links, in name order.
std::vector<std::string> childNames(const Ctx &ctx, hid_t group, const std::string &where);

} // namespace qs::core::h5
