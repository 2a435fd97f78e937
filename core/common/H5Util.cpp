#include "common/H5Util.h"

#include <cstring>

#include "common/Error.h"

namespace qs::core::h5 {

std::string takeHdf5Message()
{
    std::string msg;
    H5Ewalk2(
        H5E_DEFAULT, H5E_WALK_UPWARD,
        [](unsigned n, const H5E_error2_t *err, void *data) -> herr_t {
            if (n == 0 && err && err->desc)
                *static_cast<std::string *>(data) = err->desc;
            return 0;
        },
        &msg);
    H5Eclear2(H5E_DEFAULT);
    return msg;
}

void Ctx::failH5(const std::string &what) const
{
    const std::string reason = takeHdf5Message();
    fail(path, reason.empty() ? what : what + " (HDF5: " + reason + ")");
}

hid_t Ctx::check(hid_t id, const std::string &what) const
{
    if (id < 0)
        failH5(what);
    return id;
}

void Ctx::ok(herr_t status, const std::string &what) const
{
    if (status < 0)
        failH5(what);
}

Handle Ctx::group(hid_t loc, const std::string &name, bool create) const
{
    const hid_t id = create ? H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                            : H5Gopen2(loc, name.c_str(), H5P_DEFAULT);
    return Handle(check(id, (create ? "cannot create group " : "missing group ") + name), H5Gclose);
}

bool exists(hid_t loc, const std::string &name)
{
    return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0;
}

Handle stringType(const Ctx &ctx)
{
    Handle t(ctx.check(H5Tcopy(H5T_C_S1), "cannot create the string type"), H5Tclose);
    ctx.ok(H5Tset_size(t.id(), H5T_VARIABLE), "cannot size the string type");
    ctx.ok(H5Tset_cset(t.id(), H5T_CSET_UTF8), "cannot set UTF-8 on the string type");
    ctx.ok(H5Tset_strpad(t.id(), H5T_STR_NULLTERM), "cannot set the string padding");
    return t;
}

Handle boolType(const Ctx &ctx)
{
    Handle t(ctx.check(H5Tenum_create(H5T_NATIVE_INT8), "cannot create the bool type"), H5Tclose);
    int8_t v = 0;
    ctx.ok(H5Tenum_insert(t.id(), "FALSE", &v), "cannot create the bool type");
    v = 1;
    ctx.ok(H5Tenum_insert(t.id(), "TRUE", &v), "cannot create the bool type");
    return t;
}

void writeAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, hid_t fileType, hid_t memType,
    const void *value)
{
    Handle space(ctx.check(H5Screate(H5S_SCALAR), "cannot create a dataspace"), H5Sclose);
    Handle attr(ctx.check(H5Acreate2(loc, name, fileType, space.id(), H5P_DEFAULT, H5P_DEFAULT),
                    "cannot create attribute " + where + "@" + name),
        H5Aclose);
    ctx.ok(H5Awrite(attr.id(), memType, value), "cannot write attribute " + where + "@" + name);
}

void writeAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, const std::string &value)
{
    Handle t = stringType(ctx);
    const char *p = value.c_str();
    writeAttr(ctx, loc, where, name, t.id(), t.id(), &p);
}

void writeAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, int64_t value)
{
    writeAttr(ctx, loc, where, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void writeAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, uint64_t value)
{
    writeAttr(ctx, loc, where, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
}

void writeAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, double value)
{
    writeAttr(ctx, loc, where, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void writeBoolAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, bool value)
{
    Handle t = boolType(ctx);
    const int8_t v = value ? 1 : 0;
    writeAttr(ctx, loc, where, name, t.id(), t.id(), &v);
}

void writeStringDataset(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, const std::string &text)
{
    Handle t = stringType(ctx);
    Handle space(ctx.check(H5Screate(H5S_SCALAR), "cannot create a dataspace"), H5Sclose);
    Handle ds(ctx.check(H5Dcreate2(loc, name, t.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  "cannot create dataset " + where + "/" + name),
        H5Dclose);
    const char *p = text.c_str();
    ctx.ok(H5Dwrite(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p), "cannot write dataset " + where + "/" + name);
}

std::string readStringValue(const Ctx &ctx, hid_t obj, hid_t fileType, bool isAttr, const std::string &what)
{
    if (H5Tis_variable_str(fileType) > 0) {
        Handle mtype = stringType(ctx);
        char *buffer = nullptr;
        ctx.ok(isAttr ? H5Aread(obj, mtype.id(), &buffer)
                      : H5Dread(obj, mtype.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &buffer),
            "cannot read " + what);
        std::string s = buffer ? buffer : "";
        H5free_memory(buffer);
        return s;
    }
    // Fixed-length: read the bytes (one spare NUL after them) and stop at the first NUL.
    const size_t size = H5Tget_size(fileType);
    std::string s(size + 1, '\0');
    ctx.ok(isAttr ? H5Aread(obj, fileType, s.data()) : H5Dread(obj, fileType, H5S_ALL, H5S_ALL, H5P_DEFAULT, s.data()),
        "cannot read " + what);
    s.resize(std::strlen(s.c_str()));
    return s;
}

Handle openAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name)
{
    if (H5Aexists(loc, name) <= 0) {
        takeHdf5Message(); // a failed H5Aexists leaves its reason on the stack; "missing" says enough
        fail(ctx.path, where + ": missing attribute " + name);
    }
    return Handle(ctx.check(H5Aopen(loc, name, H5P_DEFAULT), "cannot open attribute " + where + "@" + name), H5Aclose);
}

std::vector<std::string> childNames(const Ctx &ctx, hid_t group, const std::string &where)
{
    H5G_info_t info {};
    ctx.ok(H5Gget_info(group, &info), "cannot list " + where);
    std::vector<std::string> names;
    for (hsize_t i = 0; i < info.nlinks; ++i) {
        const ssize_t len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
        if (len < 0)
            ctx.failH5("cannot list " + where);
        std::string name(size_t(len) + 1, '\0');
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
        name.resize(size_t(len));
        names.push_back(name);
    }
    return names;
}

} // namespace qs::core::h5
