#include "common/H5Util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common/Error.h"

namespace qs::core::h5 {

namespace {

// The text of obj, whose file type the caller has checked to be a string and whose dataspace to hold one.
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
    if (size == 0)
        ctx.failH5("cannot read the type of " + what);
    std::string s(size + 1, '\0');
    ctx.ok(isAttr ? H5Aread(obj, fileType, s.data()) : H5Dread(obj, fileType, H5S_ALL, H5S_ALL, H5P_DEFAULT, s.data()),
        "cannot read " + what);
    s.resize(std::strlen(s.c_str()));
    return s;
}

std::string formatNumber(double v)
{
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

// An attribute opened for a scalar read: checked to hold exactly one value, with its file type.
struct ScalarAttr
{
    Handle attr;
    Handle type;
    H5T_class_t cls = H5T_NO_CLASS;
    std::string what; // "<where>@<name>"
};

ScalarAttr openScalarAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name)
{
    ScalarAttr a;
    a.what = where + "@" + name;
    a.attr = openAttr(ctx, loc, where, name);
    Handle space(ctx.check(H5Aget_space(a.attr.id()), "cannot read the shape of " + a.what), H5Sclose);
    if (H5Sget_simple_extent_npoints(space.id()) != 1)
        fail(ctx.path, a.what + " is not a single value");
    a.type = Handle(ctx.check(H5Aget_type(a.attr.id()), "cannot read the type of " + a.what), H5Tclose);
    a.cls = H5Tget_class(a.type.id());
    return a;
}

template <class T>
T readAs(const Ctx &ctx, const ScalarAttr &a, hid_t memType)
{
    T v {};
    ctx.ok(H5Aread(a.attr.id(), memType, &v), "cannot read attribute " + a.what);
    return v;
}

// A float attribute that must hold a whole number in [lo, hi) (bounds exact powers of two).
double wholeNumber(const Ctx &ctx, const ScalarAttr &a, double lo, double hi)
{
    const double v = readAs<double>(ctx, a, H5T_NATIVE_DOUBLE);
    if (!std::isfinite(v) || v != std::trunc(v))
        fail(ctx.path, a.what + " is " + formatNumber(v) + ", expected a whole number");
    if (v < lo || v >= hi)
        fail(ctx.path, a.what + " is " + formatNumber(v) + ", out of range");
    return v;
}

void requireInteger64(const Ctx &ctx, const ScalarAttr &a)
{
    if (H5Tget_size(a.type.id()) > 8)
        fail(ctx.path, a.what + " is wider than 64 bits");
}

} // namespace

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

Handle openAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name)
{
    if (H5Aexists(loc, name) <= 0) {
        takeHdf5Message(); // a failed H5Aexists leaves its reason on the stack; "missing" says enough
        fail(ctx.path, where + ": missing attribute " + name);
    }
    return Handle(ctx.check(H5Aopen(loc, name, H5P_DEFAULT), "cannot open attribute " + where + "@" + name), H5Aclose);
}

std::string readString(const Ctx &ctx, hid_t obj, bool isAttr, const std::string &what)
{
    Handle ftype(ctx.check(isAttr ? H5Aget_type(obj) : H5Dget_type(obj), "cannot read the type of " + what), H5Tclose);
    if (H5Tget_class(ftype.id()) != H5T_STRING)
        fail(ctx.path, what + " is not a string");
    Handle space(
        ctx.check(isAttr ? H5Aget_space(obj) : H5Dget_space(obj), "cannot read the shape of " + what), H5Sclose);
    // Not simple_extent_ndims == 0: a null dataspace has no dimensions either, and no value.
    if (H5Sget_simple_extent_type(space.id()) != H5S_SCALAR)
        fail(ctx.path, what + " is not a single string");
    return readStringValue(ctx, obj, ftype.id(), isAttr, what);
}

std::string readStringAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name)
{
    Handle a = openAttr(ctx, loc, where, name);
    return readString(ctx, a.id(), true, where + "@" + name);
}

int64_t readInt64Attr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name)
{
    const ScalarAttr a = openScalarAttr(ctx, loc, where, name);
    if (a.cls == H5T_INTEGER) {
        requireInteger64(ctx, a);
        if (H5Tget_sign(a.type.id()) == H5T_SGN_NONE && H5Tget_size(a.type.id()) == 8) {
            const uint64_t v = readAs<uint64_t>(ctx, a, H5T_NATIVE_UINT64);
            if (v > uint64_t(std::numeric_limits<int64_t>::max()))
                fail(ctx.path, a.what + " is " + std::to_string(v) + ", out of range");
            return int64_t(v);
        }
        return readAs<int64_t>(ctx, a, H5T_NATIVE_INT64);
    }
    if (a.cls == H5T_FLOAT)
        return int64_t(wholeNumber(ctx, a, -0x1p63, 0x1p63));
    fail(ctx.path, a.what + " is not a number");
}

uint64_t readUInt64Attr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name)
{
    const ScalarAttr a = openScalarAttr(ctx, loc, where, name);
    if (a.cls == H5T_INTEGER) {
        requireInteger64(ctx, a);
        if (H5Tget_sign(a.type.id()) != H5T_SGN_NONE) {
            const int64_t v = readAs<int64_t>(ctx, a, H5T_NATIVE_INT64);
            if (v < 0)
                fail(ctx.path, a.what + " is " + std::to_string(v) + ", expected a count (not negative)");
            return uint64_t(v);
        }
        return readAs<uint64_t>(ctx, a, H5T_NATIVE_UINT64);
    }
    if (a.cls == H5T_FLOAT)
        return uint64_t(wholeNumber(ctx, a, 0.0, 0x1p64));
    fail(ctx.path, a.what + " is not a number");
}

double readDoubleAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name)
{
    const ScalarAttr a = openScalarAttr(ctx, loc, where, name);
    if (a.cls != H5T_INTEGER && a.cls != H5T_FLOAT)
        fail(ctx.path, a.what + " is not a number");
    return readAs<double>(ctx, a, H5T_NATIVE_DOUBLE);
}

bool readBoolAttr(const Ctx &ctx, hid_t loc, const std::string &where, const char *name)
{
    const ScalarAttr a = openScalarAttr(ctx, loc, where, name);
    if (a.cls == H5T_ENUM) {
        Handle t = boolType(ctx);
        return readAs<int8_t>(ctx, a, t.id()) != 0;
    }
    if (a.cls == H5T_INTEGER) {
        requireInteger64(ctx, a);
        return readAs<int64_t>(ctx, a, H5T_NATIVE_INT64) != 0;
    }
    fail(ctx.path, a.what + " is not a bool");
}

hsize_t checkedValueCount(const Ctx &ctx, const std::string &what, const std::vector<hsize_t> &dims, hsize_t maxValues)
{
    hsize_t total = 1;
    std::string shape;
    bool overflow = false;
    for (hsize_t d : dims) {
        shape += (shape.empty() ? "" : " x ") + std::to_string(d);
        if (d != 0 && total > std::numeric_limits<hsize_t>::max() / d)
            overflow = true;
        else
            total *= d;
    }
    // A zero dimension makes the product 0 even after an overflow elsewhere.
    if (std::find(dims.begin(), dims.end(), hsize_t(0)) != dims.end())
        return 0;
    if (overflow || total > maxValues)
        fail(ctx.path,
            what + " is implausibly large (" + shape + " values; this reader accepts at most "
                + std::to_string(maxValues) + ")");
    return total;
}

std::string typeClassName(H5T_class_t cls)
{
    switch (cls) {
    case H5T_INTEGER:
        return "integer";
    case H5T_FLOAT:
        return "float";
    case H5T_TIME:
        return "time";
    case H5T_STRING:
        return "string";
    case H5T_BITFIELD:
        return "bitfield";
    case H5T_OPAQUE:
        return "opaque";
    case H5T_COMPOUND:
        return "compound";
    case H5T_REFERENCE:
        return "reference";
    case H5T_ENUM:
        return "enum (bool)";
    case H5T_VLEN:
        return "variable-length";
    case H5T_ARRAY:
        return "array";
    default:
        return "unknown-type";
    }
}

void requireNumericDataset(
    const Ctx &ctx, hid_t ds, const std::string &what, bool integersOnly, const std::string &expected)
{
    Handle type(ctx.check(H5Dget_type(ds), "cannot read the type of " + what), H5Tclose);
    const H5T_class_t cls = H5Tget_class(type.id());
    if (cls == H5T_INTEGER || (!integersOnly && cls == H5T_FLOAT))
        return;
    fail(ctx.path, what + " holds " + typeClassName(cls) + " values, expected " + expected);
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
