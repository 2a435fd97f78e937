#pragma once
// Helpers shared by the safetensors / Hugging Face / llama2.c reader tests: building safetensors files in
// memory, taking real files apart, and writing corrupted copies into temporary folders.

#include <QByteArray>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QString>
#include <QTest>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qs::test {

inline QByteArray readAll(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        qFatal("cannot read %s", qPrintable(path));
    return f.readAll();
}

inline void writeAll(const QString &path, const QByteArray &bytes)
{
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate) || f.write(bytes) != bytes.size())
        qFatal("cannot write %s", qPrintable(path));
}

inline QByteArray u64Le(uint64_t v)
{
    QByteArray b(8, '\0');
    for (int i = 0; i < 8; ++i)
        b[i] = char((v >> (8 * i)) & 0xFF);
    return b;
}

inline uint64_t readU64(const QByteArray &b, int offset = 0)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | uint8_t(b[offset + i]);
    return v;
}

// 8-byte length + header text (padded with spaces to a multiple of `align`, 1 = no padding) + data.
inline QByteArray safetensorsBytes(const QByteArray &header, const QByteArray &data, int align = 8)
{
    QByteArray h = header;
    while (h.size() % align != 0)
        h.append(' ');
    return u64Le(uint64_t(h.size())) + h + data;
}

// A real safetensors file split into its parsed header and data section, to be edited and reassembled.
struct SplitFile
{
    nlohmann::json header;
    QByteArray data;

    QByteArray assemble(int align = 8) const
    {
        return safetensorsBytes(QByteArray::fromStdString(header.dump()), data, align);
    }
};

inline SplitFile splitSafetensors(const QByteArray &file)
{
    const uint64_t n = readU64(file);
    SplitFile s;
    s.header = nlohmann::json::parse(file.mid(8, int(n)).toStdString());
    s.data = file.mid(int(8 + n));
    return s;
}

struct TensorSpec
{
    std::string name;
    std::string dtype;
    std::vector<uint64_t> shape;
    QByteArray bytes;
};

// Writes tensors back to back in the given order.
inline QByteArray buildSafetensors(const std::vector<TensorSpec> &tensors, int align = 8)
{
    nlohmann::json header = nlohmann::json::object();
    header["__metadata__"] = { { "format", "pt" } };
    QByteArray data;
    for (const TensorSpec &t : tensors) {
        const uint64_t begin = uint64_t(data.size());
        data += t.bytes;
        header[t.name]
            = { { "dtype", t.dtype }, { "shape", t.shape }, { "data_offsets", { begin, uint64_t(data.size()) } } };
    }
    return safetensorsBytes(QByteArray::fromStdString(header.dump()), data, align);
}

// Every tensor of a safetensors file, as specs (bytes copied).
inline std::vector<TensorSpec> tensorsOf(const QByteArray &file)
{
    const SplitFile s = splitSafetensors(file);
    std::vector<TensorSpec> out;
    for (auto it = s.header.begin(); it != s.header.end(); ++it) {
        if (it.key() == "__metadata__")
            continue;
        const uint64_t b = it.value()["data_offsets"][0].get<uint64_t>();
        const uint64_t e = it.value()["data_offsets"][1].get<uint64_t>();
        out.push_back({ it.key(), it.value()["dtype"].get<std::string>(),
            it.value()["shape"].get<std::vector<uint64_t>>(), s.data.mid(int(b), int(e - b)) });
    }
    return out;
}

inline QByteArray floatBytes(const std::vector<float> &v)
{
    return QByteArray(reinterpret_cast<const char *>(v.data()), int(v.size() * sizeof(float)));
}

// Copies every file of a folder (not recursive) into dst, made writable.
inline void copyFolder(const QString &src, const QString &dst)
{
    QDir().mkpath(dst);
    const QDir dir(src);
    for (const QFileInfo &fi : dir.entryInfoList(QDir::Files))
        writeAll(dst + QLatin1Char('/') + fi.fileName(), readAll(fi.absoluteFilePath()));
}

inline std::string str(const QString &s)
{
    return s.toStdString();
}

} // namespace qs::test

// Runs expr, which must throw qs::core::Error whose message contains every string in the list.
#define QS_EXPECT_ERROR(expr, ...)                                                                                     \
    do {                                                                                                               \
        bool thrown_ = false;                                                                                          \
        try {                                                                                                          \
            (void)(expr);                                                                                              \
        } catch (const qs::core::Error &e_) {                                                                          \
            thrown_ = true;                                                                                            \
            const std::string msg_ = e_.what();                                                                        \
            for (const std::string &part_ : std::vector<std::string> { __VA_ARGS__ })                                  \
                if (msg_.find(part_) == std::string::npos)                                                             \
                    QFAIL(qPrintable(QStringLiteral("error message \"%1\" lacks \"%2\"")                               \
                                         .arg(QString::fromStdString(msg_), QString::fromStdString(part_))));          \
        }                                                                                                              \
        if (!thrown_)                                                                                                  \
            QFAIL("expected qs::core::Error from " #expr);                                                             \
    } while (false)
