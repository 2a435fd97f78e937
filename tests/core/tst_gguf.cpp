// GGUF: the parsed file (metadata of every type, tensor infos, validation of malformed files) and the
// llama model built from it (hyper-parameters, canonical names, q/k permutation, tied output, decoding).
#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "TestData.h"
#include "common/Error.h"
#include "common/Half.h"
#include "io/FormatRegistry.h"
#include "io/GgufBlocks.h"
#include "io/GgufFile.h"
#include "io/GgufReader.h"

using namespace qs::core;

namespace {

// GGUF value type ids (formats.md 2.2), written out here rather than taken from the library.
enum : uint32_t {
    tU8 = 0,
    tI8 = 1,
    tU16 = 2,
    tI16 = 3,
    tU32 = 4,
    tI32 = 5,
    tF32 = 6,
    tBool = 7,
    tString = 8,
    tArray = 9,
    tU64 = 10,
    tI64 = 11,
    tF64 = 12,
};
// ggml type ids (formats.md 2.5).
enum : uint32_t {
    gF32 = 0,
    gF16 = 1,
    gQ4_0 = 2,
    gQ4_1 = 3,
    gQ5_0 = 6,
    gQ5_1 = 7,
    gQ8_0 = 8,
    gQ3_K = 11,
    gQ4_K = 12,
    gQ6_K = 14,
    gBF16 = 30
};

template <typename T> void put(QByteArray &b, T v)
{
    char raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    b.append(raw, sizeof(T));
}

void putString(QByteArray &b, const QByteArray &s)
{
    put<uint64_t>(b, uint64_t(s.size()));
    b.append(s);
}

template <typename T> void patch(QByteArray &b, qsizetype at, T v)
{
    QVERIFY(at >= 0 && at + qsizetype(sizeof(T)) <= b.size());
    std::memcpy(b.data() + at, &v, sizeof(T));
}

// Writes GGUF files the straightforward way: header, key/values, tensor infos with offsets packed in
// order and padded to the alignment, padding, data. Independent of the parser under test.
class GgufBuilder
{
public:
    uint32_t version = 3;
    uint32_t alignment = 32;

    void raw(const QByteArray &key, uint32_t type, const QByteArray &value)
    {
        putString(m_kv, key);
        put<uint32_t>(m_kv, type);
        m_kv.append(value);
        ++m_kvCount;
    }
    template <typename T> void scalar(const QByteArray &key, uint32_t type, T v)
    {
        QByteArray value;
        put<T>(value, v);
        raw(key, type, value);
    }
    void u32(const QByteArray &key, uint32_t v) { scalar<uint32_t>(key, tU32, v); }
    void f32(const QByteArray &key, float v) { scalar<float>(key, tF32, v); }
    void boolean(const QByteArray &key, bool v) { scalar<uint8_t>(key, tBool, v ? 1 : 0); }
    void string(const QByteArray &key, const QByteArray &v)
    {
        QByteArray value;
        putString(value, v);
        raw(key, tString, value);
    }
    void strings(const QByteArray &key, const QList<QByteArray> &v)
    {
        QByteArray value;
        put<uint32_t>(value, tString);
        put<uint64_t>(value, uint64_t(v.size()));
        for (const QByteArray &s : v)
            putString(value, s);
        raw(key, tArray, value);
    }
    template <typename T> void array(const QByteArray &key, uint32_t elementType, const QList<T> &v)
    {
        QByteArray value;
        put<uint32_t>(value, elementType);
        put<uint64_t>(value, uint64_t(v.size()));
        for (T x : v)
            put<T>(value, x);
        raw(key, tArray, value);
    }

    void tensor(const QByteArray &name, const QList<uint64_t> &ne, uint32_t type, const QByteArray &data)
    {
        m_tensors.append({ name, ne, type, data });
    }

    QByteArray build() const
    {
        QByteArray out("GGUF");
        put<uint32_t>(out, version);
        put<uint64_t>(out, uint64_t(m_tensors.size()));
        put<uint64_t>(out, m_kvCount);
        out.append(m_kv);
        uint64_t offset = 0;
        for (const Tensor &t : m_tensors) {
            putString(out, t.name);
            put<uint32_t>(out, uint32_t(t.ne.size()));
            for (uint64_t n : t.ne)
                put<uint64_t>(out, n);
            put<uint32_t>(out, t.type);
            put<uint64_t>(out, offset);
            offset += padded(uint64_t(t.data.size()));
        }
        if (!m_tensors.isEmpty()) {
            out.append(QByteArray(qsizetype(padded(uint64_t(out.size())) - uint64_t(out.size())), '\0'));
            for (const Tensor &t : m_tensors) {
                out.append(t.data);
                out.append(QByteArray(qsizetype(padded(uint64_t(t.data.size())) - uint64_t(t.data.size())), '\0'));
            }
        }
        return out;
    }

private:
    uint64_t padded(uint64_t n) const { return (n + alignment - 1) / alignment * alignment; }
    struct Tensor
    {
        QByteArray name;
        QList<uint64_t> ne;
        uint32_t type;
        QByteArray data;
    };
    QByteArray m_kv;
    uint64_t m_kvCount = 0;
    QList<Tensor> m_tensors;
};

QByteArray readAll(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll();
}

bool writeFile(const QString &path, const QByteArray &bytes)
{
    QFile f(path);
    return f.open(QIODevice::WriteOnly) && f.write(bytes) == bytes.size();
}

// Parses from a heap buffer of exactly the image's size, so any overread is caught by the sanitizer.
GgufFile parseExact(const QByteArray &image, const std::string &name = "test.gguf")
{
    std::vector<uint8_t> buffer(image.begin(), image.end());
    GgufFile f = GgufFile::parse(buffer.data(), buffer.size(), name);
    return f;
}

// Runs fn, expects an Error whose message starts with "<file>: " and contains fragment.
template <typename Fn> QString expectError(Fn &&fn, const QString &file, const QString &fragment)
{
    try {
        fn();
    } catch (const Error &e) {
        const QString msg = QString::fromUtf8(e.what());
        // "<file>: ..." where <file> is the given name or a path ending in it
        const QString named = msg.section(QStringLiteral(": "), 0, 0);
        if (named != file && !named.endsWith(QLatin1Char('/') + file))
            return QStringLiteral("message does not name the file: ") + msg;
        if (!fragment.isEmpty() && !msg.contains(fragment))
            return QStringLiteral("message lacks '%1': %2").arg(fragment, msg);
        return {};
    } catch (const std::exception &e) {
        return QStringLiteral("threw something else than qs::core::Error: ") + QString::fromUtf8(e.what());
    }
    return QStringLiteral("no error");
}

#define QS_EXPECT_ERROR(call, file, fragment)                                                                          \
    do {                                                                                                               \
        const QString problem_ = expectError([&] { call; }, file, fragment);                                           \
        QVERIFY2(problem_.isEmpty(), qPrintable(problem_));                                                            \
    } while (false)

// Position of the tensor info of `name` in a GGUF image: the byte after the name (n_dims).
qsizetype tensorInfoAt(const QByteArray &image, const QByteArray &name)
{
    QByteArray needle;
    putString(needle, name);
    const qsizetype at = image.indexOf(needle);
    return at < 0 ? -1 : at + needle.size();
}

// Position of the key string (its length prefix) of `key`.
qsizetype keyAt(const QByteArray &image, const QByteArray &key)
{
    QByteArray needle;
    putString(needle, key);
    return image.indexOf(needle);
}

QByteArray randomBytes(qsizetype n, std::mt19937 &rng)
{
    QByteArray b(n, 0);
    for (char &c : b)
        c = char(rng() & 0xFF);
    return b;
}

// Quantized tensor data with random quants and sane scales: every half-precision scale field of every
// block is overwritten with a small finite value.
QByteArray quantData(uint32_t type, uint64_t rows, uint64_t cols, std::mt19937 &rng)
{
    const GgmlTypeInfo &t = *findGgmlType(type);
    const uint64_t blocks = rows * cols / t.blockSize;
    QByteArray b = randomBytes(qsizetype(blocks * t.bytesPerBlock), rng);
    std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
    for (uint64_t k = 0; k < blocks; ++k) {
        char *blk = b.data() + k * t.bytesPerBlock;
        auto setHalf = [&](int at) {
            const uint16_t h = floatToHalf(scale(rng));
            std::memcpy(blk + at, &h, 2);
        };
        switch (type) {
        case gF32:
        case gF16:
        case gBF16: {
            const float v = scale(rng) * 20;
            if (type == gF32)
                std::memcpy(blk, &v, 4);
            else {
                const uint16_t h = type == gF16 ? floatToHalf(v) : floatToBf16(v);
                std::memcpy(blk, &h, 2);
            }
            break;
        }
        case gQ4_1:
        case gQ5_1:
        case gQ4_K:
            setHalf(0);
            setHalf(2);
            break;
        case gQ6_K:
            setHalf(208);
            break;
        default:
            setHalf(0);
            break;
        }
    }
    return b;
}

// A small but complete llama model: hidden 256 so that K-quants fit, 2 blocks, 4 heads of 64, 2 kv heads,
// ffn 256, vocab 8; every decodable type is used by some tensor; output.weight omitted (tied) unless asked.
struct TinyLlama
{
    GgufBuilder builder;
    QMap<QByteArray, QByteArray> data; // GGUF name -> bytes
    QMap<QByteArray, uint32_t> types;
};

TinyLlama makeTinyLlama(bool withOutput, bool withQkBias)
{
    TinyLlama m;
    GgufBuilder &b = m.builder;
    b.string("general.architecture", "llama");
    b.u32("llama.context_length", 128);
    b.u32("llama.embedding_length", 256);
    b.u32("llama.block_count", 2);
    b.u32("llama.feed_forward_length", 256);
    b.u32("llama.attention.head_count", 4);
    b.u32("llama.attention.head_count_kv", 2);
    b.f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
    b.f32("llama.rope.freq_base", 500000.0f);
    b.u32("llama.rope.dimension_count", 64);
    b.string("llama.rope.scaling.type", "linear");
    b.f32("llama.rope.scaling.factor", 4.0f);
    b.u32("llama.rope.scaling.original_context_length", 32);
    b.string("tokenizer.ggml.model", "gpt2");
    b.strings("tokenizer.ggml.tokens", { "a", "b", "c", "d", "e", "f", "<s>", "</s>" });
    b.u32("tokenizer.ggml.bos_token_id", 6);
    b.u32("tokenizer.ggml.eos_token_id", 7);
    b.boolean("tokenizer.ggml.add_bos_token", true);

    std::mt19937 rng(42);
    auto add = [&](const QByteArray &name, QList<uint64_t> ne, uint32_t type) {
        const uint64_t rows = ne.size() > 1 ? ne[1] : 1;
        const QByteArray bytes = quantData(type, rows, ne[0], rng);
        b.tensor(name, ne, type, bytes);
        m.data[name] = bytes;
        m.types[name] = type;
    };
    add("token_embd.weight", { 256, 8 }, gF16);
    for (int blk = 0; blk < 2; ++blk) {
        const QByteArray p = "blk." + QByteArray::number(blk) + ".";
        add(p + "attn_norm.weight", { 256 }, gF32);
        add(p + "attn_q.weight", { 256, 256 }, blk == 0 ? gQ4_0 : gQ4_K);
        add(p + "attn_k.weight", { 256, 128 }, blk == 0 ? gQ4_1 : gQ6_K);
        add(p + "attn_v.weight", { 256, 128 }, gQ5_0);
        if (withQkBias) {
            QByteArray qb, kb;
            for (int i = 0; i < 256; ++i)
                put<float>(qb, float(i));
            for (int i = 0; i < 128; ++i)
                put<float>(kb, float(1000 + i));
            b.tensor(p + "attn_q.bias", { 256 }, gF32, qb);
            b.tensor(p + "attn_k.bias", { 128 }, gF32, kb);
            m.data[p + "attn_q.bias"] = qb;
            m.data[p + "attn_k.bias"] = kb;
        }
        add(p + "attn_output.weight", { 256, 256 }, gQ5_1);
        add(p + "ffn_norm.weight", { 256 }, gBF16);
        add(p + "ffn_gate.weight", { 256, 256 }, gQ8_0);
        add(p + "ffn_up.weight", { 256, 256 }, gQ4_K);
        add(p + "ffn_down.weight", { 256, 256 }, gQ6_K);
    }
    add("output_norm.weight", { 256 }, gF32);
    if (withOutput)
        add("output.weight", { 256, 8 }, gQ8_0);
    return m;
}

// Decodes row `row` of stored GGUF bytes with the reference decoder.
std::vector<float> referenceRow(const QByteArray &bytes, uint32_t type, uint64_t cols, uint64_t row)
{
    const GgmlTypeInfo &t = *findGgmlType(type);
    const uint64_t rowBytes = cols / t.blockSize * t.bytesPerBlock;
    std::vector<float> out(static_cast<size_t>(cols));
    t.dequantizeReference(
        reinterpret_cast<const uint8_t *>(bytes.constData()) + row * rowBytes, out.data(), int64_t(cols));
    return out;
}

// The llama keys of a 1-block model with hidden 256 and 4 heads of 64.
void addLlamaKeys(GgufBuilder &b)
{
    b.string("general.architecture", "llama");
    b.u32("llama.context_length", 16);
    b.u32("llama.embedding_length", 256);
    b.u32("llama.block_count", 1);
    b.u32("llama.feed_forward_length", 256);
    b.u32("llama.attention.head_count", 4);
    b.f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
}

bool sameBits(const float *a, const float *b, size_t n)
{
    return std::memcmp(a, b, n * sizeof(float)) == 0;
}

} // namespace

class TestGguf : public QObject
{
    Q_OBJECT

    QTemporaryDir m_dir;
    QString tempPath(const QString &name) const { return m_dir.filePath(name); }

private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    // ---- the real files -------------------------------------------------------------------------------

    void storiesMetadata()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K.gguf");
        const GgufFile f = GgufFile::open(path.toStdString());
        QCOMPARE(f.fileName(), std::string("stories260K.gguf"));
        QCOMPARE(f.version(), 3u);
        QCOMPARE(f.metadata().size(), size_t(19));
        QCOMPARE(f.tensors().size(), size_t(48));
        QCOMPARE(f.alignment(), 32u);
        QCOMPARE(f.dataStart(), uint64_t(14176)); // infos end at 14152, padded to 32
        QCOMPARE(*f.getString("general.architecture"), std::string("llama"));
        QCOMPARE(*f.getU32("llama.block_count"), 5u);
        QCOMPARE(*f.getU32("llama.embedding_length"), 64u);
        QCOMPARE(*f.getF32("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
        QCOMPARE(*f.getU32("tokenizer.ggml.padding_token_id"), 0xFFFFFFFFu);
        QCOMPARE(*f.getInteger("llama.context_length"), int64_t(2048));
        QVERIFY(!f.getU32("no.such.key"));
        QVERIFY(!f.getStringArray("no.such.key"));
        const auto tokens = f.getStringArray("tokenizer.ggml.tokens");
        QVERIFY(tokens);
        QCOMPARE(tokens->size(), size_t(512));
        QCOMPARE(tokens->at(1), std::string("<s>"));
        QCOMPARE(f.getF32Array("tokenizer.ggml.scores")->size(), size_t(512));
        const auto types = f.getI32Array("tokenizer.ggml.token_type");
        QCOMPARE(types->size(), size_t(512));
        QCOMPARE(types->at(0), 2); // <unk> is "unknown"
        QCOMPARE(types->at(1), 3); // <s> is "control"

        const GgufTensorInfo *embd = f.findTensor("token_embd.weight");
        QVERIFY(embd);
        QCOMPARE(embd->ne, (std::vector<uint64_t> { 64, 512 }));
        QCOMPARE(QString::fromLatin1(embd->type->name), QStringLiteral("F32"));
        QCOMPARE(embd->nbytes, uint64_t(64 * 512 * 4));
        QCOMPARE(f.findTensor("blk.4.ffn_norm.weight")->offset, uint64_t(1170944));
        QCOMPARE(f.tensorFileOffset(*f.findTensor("blk.4.ffn_norm.weight")) + 256, f.fileSize());
    }

    void wrongTypeGettersNameFileAndKey()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K.gguf");
        const GgufFile f = GgufFile::open(path.toStdString());
        const QString file = QStringLiteral("stories260K.gguf");
        QS_EXPECT_ERROR(f.getU32("general.name"), file, QStringLiteral("'general.name' is STRING, expected UINT32"));
        QS_EXPECT_ERROR(f.getI32("llama.block_count"), file, QStringLiteral("is UINT32, expected INT32"));
        QS_EXPECT_ERROR(f.getString("llama.block_count"), file, QStringLiteral("expected STRING"));
        QS_EXPECT_ERROR(f.getF32("llama.block_count"), file, QStringLiteral("expected FLOAT32"));
        QS_EXPECT_ERROR(f.getFloat("llama.block_count"), file, QStringLiteral("expected FLOAT32 or FLOAT64"));
        QS_EXPECT_ERROR(f.getInteger("general.name"), file, QStringLiteral("expected an integer"));
        QS_EXPECT_ERROR(f.getStringArray("tokenizer.ggml.scores"), file,
            QStringLiteral("is ARRAY of FLOAT32, expected ARRAY of STRING"));
        QS_EXPECT_ERROR(f.getF32Array("tokenizer.ggml.token_type"), file, QStringLiteral("expected ARRAY of FLOAT32"));
        QS_EXPECT_ERROR(f.getI32Array("llama.block_count"), file, QStringLiteral("expected ARRAY of INT32"));
        QS_EXPECT_ERROR(f.getArraySize("general.name"), file, QStringLiteral("expected an ARRAY"));
    }

    void storiesModel()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K.gguf");
        const std::unique_ptr<Model> m = GgufReader::open(path.toStdString());
        QCOMPARE(m->format, std::string("gguf"));
        QCOMPARE(m->path, path.toStdString());
        QCOMPARE(m->tokenizerPath, path.toStdString());
        const HyperParams &h = m->hparams;
        QCOMPARE(h.architecture, std::string("llama"));
        QCOMPARE(h.hiddenSize, 64);
        QCOMPARE(h.numLayers, 5);
        QCOMPARE(h.numHeads, 8);
        QCOMPARE(h.numKvHeads, 4);
        QCOMPARE(h.intermediateSize, 172);
        QCOMPARE(h.vocabSize, 512);
        QCOMPARE(h.headDim, 8);
        QCOMPARE(h.maxPositions, 2048);
        QCOMPARE(float(h.rmsEps), 1e-5f);
        QCOMPARE(h.ropeTheta, 10000.0);
        QCOMPARE(h.ropeScaling.type, std::string("none"));
        QCOMPARE(h.bosTokenId, 1);
        QCOMPARE(h.eosTokenId, 2);
        QVERIFY(h.addBos); // no add_bos_token key; SentencePiece vocabularies add BOS
        QVERIFY(!h.tiedEmbeddings);
        QVERIFY(!h.attentionBias);
        QVERIFY(m->warnings.empty());

        QCOMPARE(m->tensors.size(), size_t(48));
        QCOMPARE(m->tensors.front().name, std::string("model.embed_tokens"));
        QCOMPARE(m->tensors[1].name, std::string("model.layers.0.input_layernorm"));
        QCOMPARE(m->tensors[2].name, std::string("model.layers.0.self_attn.q_proj"));
        QCOMPARE(m->tensors.back().name, std::string("lm_head"));
        QCOMPARE(m->tensors[m->tensors.size() - 2].name, std::string("model.norm"));
        const Tensor &q = m->tensor("model.layers.3.self_attn.q_proj");
        QCOMPARE(q.sourceName, std::string("blk.3.attn_q.weight"));
        QCOMPARE(q.role, TensorRole::Q);
        QCOMPARE(q.block, 3);
        QCOMPARE(q.rows, int64_t(64));
        QCOMPARE(q.cols, int64_t(64));
        QCOMPARE(q.dtype, DType::F32);
        QCOMPARE(q.storedBytes, uint64_t(64 * 64 * 4));
        const Tensor &down = m->tensor("model.layers.0.mlp.down_proj");
        QCOMPARE(down.rows, int64_t(64));
        QCOMPARE(down.cols, int64_t(172));
        QCOMPARE(m->tensor("model.layers.0.post_attention_layernorm").sourceName, std::string("blk.0.ffn_norm.weight"));
        QCOMPARE(m->tensor("model.norm").rows, int64_t(1));
        QCOMPARE(m->tensor("model.norm").cols, int64_t(64));
        QVERIFY(!m->tensor("lm_head").tied);
        QCOMPARE(
            m->parameterCount(), int64_t(512 * 64 * 2 + 64 + 5 * (64 * 64 * 2 + 32 * 64 * 2 + 3 * 172 * 64 + 128)));

        // Rows against the file's bytes, read independently: q/k rows come from the Meta row of their
        // HF position, everything else row for row.
        const QByteArray file = readAll(path);
        const GgufFile f = GgufFile::open(path.toStdString());
        auto storedRow = [&](const char *name, int64_t row, int64_t cols) {
            const uint64_t at = f.tensorFileOffset(*f.findTensor(name)) + uint64_t(row * cols * 4);
            std::vector<float> v(static_cast<size_t>(cols));
            std::memcpy(v.data(), file.constData() + at, size_t(cols) * 4);
            return v;
        };
        std::vector<float> row(64);
        for (int64_t r : { 0, 1, 5, 8, 13, 63 }) {
            m->readRows(q, r, 1, row.data());
            QVERIFY(sameBits(row.data(), storedRow("blk.3.attn_q.weight", hfRowToMetaRow(r, 8), 64).data(), 64));
        }
        QVERIFY(hfRowToMetaRow(1, 8) != 1); // the check above would be vacuous otherwise
        const Tensor &k = m->tensor("model.layers.1.self_attn.k_proj");
        for (int64_t r = 0; r < 32; ++r) {
            m->readRows(k, r, 1, row.data());
            QVERIFY(sameBits(row.data(), storedRow("blk.1.attn_k.weight", hfRowToMetaRow(r, 8), 64).data(), 64));
        }
        const Tensor &v = m->tensor("model.layers.1.self_attn.v_proj");
        for (int64_t r = 0; r < 32; ++r) {
            m->readRows(v, r, 1, row.data());
            QVERIFY(sameBits(row.data(), storedRow("blk.1.attn_v.weight", r, 64).data(), 64));
        }
        const std::vector<float> embed = m->readMatrix(m->tensor("model.embed_tokens"));
        QVERIFY(sameBits(embed.data() + 511 * 64, storedRow("token_embd.weight", 511, 64).data(), 64));
        const std::vector<float> downAll = m->readMatrix(down);
        QVERIFY(sameBits(downAll.data() + 63 * 172, storedRow("blk.0.ffn_down.weight", 63, 172).data(), 172));

        // Several rows at once equal the rows one by one.
        std::vector<float> block(static_cast<size_t>(4 * 64));
        m->readRows(q, 8, 4, block.data());
        for (int i = 0; i < 4; ++i) {
            m->readRows(q, 8 + i, 1, row.data());
            QVERIFY(sameBits(row.data(), block.data() + i * 64, 64));
        }
        QS_EXPECT_ERROR(
            m->readRows(q, 60, 5, row.data()), QString::fromStdString(m->path), QStringLiteral("out of range"));
        QS_EXPECT_ERROR(
            q.data->readRows(-1, 1, row.data()), QStringLiteral("stories260K.gguf"), QStringLiteral("out of range"));
    }

    void registryOpensGguf()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K.gguf");
        QS_REQUIRE_TESTDATA(text, "text/tinystories_sample.txt");
        const ModelFormat *gguf = nullptr;
        for (const ModelFormat &f : modelFormats())
            if (f.name == "gguf")
                gguf = &f;
        QVERIFY(gguf);
        QCOMPARE(gguf->filePatterns, std::vector<std::string> { "*.gguf" });
        QVERIFY(gguf->probe(path.toStdString()));
        QVERIFY(!gguf->probe(text.toStdString()));
        QVERIFY(!gguf->probe(qs::test::testDataDir().toStdString())); // a folder
        QVERIFY(!gguf->probe(tempPath(QStringLiteral("missing.gguf")).toStdString()));
        const std::unique_ptr<Model> m = openModel(path.toStdString());
        QCOMPARE(m->format, std::string("gguf"));
    }

    void vocabularyOnlyFiles_data()
    {
        QTest::addColumn<QString>("file");
        QTest::addColumn<int>("tokens");
        QTest::addColumn<int>("merges");
        QTest::addColumn<QString>("tokenizerModel");
        QTest::newRow("llama-spm") << QStringLiteral("tokenizers/ggml-vocab-llama-spm.gguf") << 32000 << -1
                                   << QStringLiteral("llama");
        QTest::newRow("gpt-2") << QStringLiteral("tokenizers/ggml-vocab-gpt-2.gguf") << 50257 << 50000
                               << QStringLiteral("gpt2");
    }
    void vocabularyOnlyFiles()
    {
        QFETCH(QString, file);
        QFETCH(int, tokens);
        QFETCH(int, merges);
        QFETCH(QString, tokenizerModel);
        const QString path = qs::test::testDataPath(file);
        if (!QFileInfo::exists(path)) {
            if (qs::test::inCi())
                QFAIL(qPrintable(QStringLiteral("test data missing: ") + path));
            QSKIP(qPrintable(QStringLiteral("test data missing: ") + path));
        }
        const GgufFile f = GgufFile::open(path.toStdString());
        QVERIFY(f.tensors().empty());
        QCOMPARE(QString::fromStdString(*f.getString("tokenizer.ggml.model")), tokenizerModel);
        const std::vector<std::string> *list = f.stringArray("tokenizer.ggml.tokens");
        QVERIFY(list);
        QCOMPARE(int(list->size()), tokens);
        QCOMPARE(f.getI32Array("tokenizer.ggml.token_type")->size(), size_t(tokens));
        if (merges >= 0) {
            const auto m = f.getStringArray("tokenizer.ggml.merges");
            QCOMPARE(int(m->size()), merges);
            QCOMPARE(m->front(), std::string("\xC4\xA0 t")); // "Ġ t"
            QCOMPARE(list->at(50256), std::string("<|endoftext|>"));
            QVERIFY(!f.has("tokenizer.ggml.scores"));
        } else {
            const auto scores = f.getF32Array("tokenizer.ggml.scores");
            QCOMPARE(int(scores->size()), tokens);
            QCOMPARE(list->at(0), std::string("<unk>"));
            QCOMPARE(*f.getBool("tokenizer.ggml.add_bos_token"), true);
            QCOMPARE(*f.getBool("tokenizer.ggml.add_eos_token"), false);
        }
        const QString name = QFileInfo(path).fileName();
        QS_EXPECT_ERROR(GgufReader::open(path.toStdString()), name, QStringLiteral("no tensors"));
        QS_EXPECT_ERROR(openModel(path.toStdString()), name, QStringLiteral("not a model"));
    }

    // ---- malformed variants of the real file ----------------------------------------------------------

    void malformedStories_data()
    {
        QTest::addColumn<QByteArray>("image");
        QTest::addColumn<bool>("parses"); // the file itself is well-formed; only the model is wrong
        QTest::addColumn<QString>("fragment");
        const QString path = qs::test::testDataPath(QStringLiteral("models/stories260K.gguf"));
        const QByteArray good = readAll(path);
        if (good.isEmpty())
            return; // the test function skips or fails with the usual message
        QCOMPARE(good.size(), 1185376);

        auto row
            = [&](const char *tag, const std::function<void(QByteArray &)> &change, bool parses, const char *fragment) {
                  QByteArray b = good;
                  change(b);
                  QTest::newRow(tag) << b << parses << QString::fromUtf8(fragment);
              };
        // The first entry is tokenizer.ggml.tokens at byte 24: u64 key length, 21 bytes of key, u32 value
        // type (ARRAY), u32 element type, u64 count, then the strings.
        QCOMPARE(keyAt(good, "tokenizer.ggml.tokens"), qsizetype(24));
        const qsizetype valueTypeAt = 24 + 8 + 21;
        const qsizetype elementTypeAt = valueTypeAt + 4;
        const qsizetype arrayCountAt = valueTypeAt + 8;
        const qsizetype embd = tensorInfoAt(good, "token_embd.weight");
        const qsizetype norm = tensorInfoAt(good, "output_norm.weight");
        const qsizetype last = tensorInfoAt(good, "blk.4.ffn_norm.weight");
        const qsizetype q0 = tensorInfoAt(good, "blk.0.attn_q.weight");
        QVERIFY(embd > 0 && norm > 0 && last > 0 && q0 > 0);
        // tensor info after the name: u32 n_dims, u64 ne[n_dims], u32 type, u64 offset
        auto typeAt = [](qsizetype info, int nDims) { return info + 4 + 8 * nDims; };
        auto offsetAt = [](qsizetype info, int nDims) { return info + 4 + 8 * nDims + 4; };

        row(
            "bad magic", [](QByteArray &b) { b[3] = 'G'; }, false, "not a GGUF file (starts with 'GGUG'");
        row(
            "version 1", [](QByteArray &b) { patch<uint32_t>(b, 4, 1); }, false, "version 1 is not supported");
        row(
            "version 0", [](QByteArray &b) { patch<uint32_t>(b, 4, 0); }, false, "unsupported GGUF version 0");
        row(
            "version 4", [](QByteArray &b) { patch<uint32_t>(b, 4, 4); }, false, "unsupported GGUF version 4");
        row(
            "big-endian", [](QByteArray &b) { patch<uint32_t>(b, 4, 0x03000000); }, false, "big-endian");
        row(
            "huge tensor count", [](QByteArray &b) { patch<uint64_t>(b, 8, uint64_t(1) << 40); }, false, "cannot fit");
        row(
            "huge kv count", [](QByteArray &b) { patch<uint64_t>(b, 16, uint64_t(1) << 62); }, false, "cannot fit");
        row(
            "max kv count", [](QByteArray &b) { patch<uint64_t>(b, 16, ~uint64_t(0)); }, false, "cannot fit");
        row(
            "kv count one too many", [](QByteArray &b) { patch<uint64_t>(b, 16, 20); }, false, "");
        row(
            "huge string length", [](QByteArray &b) { patch<uint64_t>(b, 24, uint64_t(1) << 50); }, false,
            "claims 1125899906842624 bytes");
        row(
            "string length past end", [&](QByteArray &b) { patch<uint64_t>(b, 24, uint64_t(good.size())); }, false,
            "bytes of the file are left");
        row(
            "unknown value type", [&](QByteArray &b) { patch<uint32_t>(b, valueTypeAt, 13); }, false,
            "metadata entry 0 ('tokenizer.ggml.tokens'): unknown metadata value type 13");
        row(
            "nested array", [&](QByteArray &b) { patch<uint32_t>(b, elementTypeAt, tArray); }, false,
            "arrays of arrays");
        row(
            "unknown array element type", [&](QByteArray &b) { patch<uint32_t>(b, elementTypeAt, 77); }, false,
            "unknown metadata value type 77");
        row(
            "huge array count", [&](QByteArray &b) { patch<uint64_t>(b, arrayCountAt, uint64_t(1) << 31); }, false,
            "exceeds the limit");
        row(
            "array count past end", [&](QByteArray &b) { patch<uint64_t>(b, arrayCountAt, uint64_t(1) << 29); }, false,
            "needs at least");
        row(
            "array count one too many", [&](QByteArray &b) { patch<uint64_t>(b, arrayCountAt, 513); }, false, "");
        row(
            "duplicate key",
            [&](QByteArray &b) {
                const qsizetype at = keyAt(b, "tokenizer.ggml.scores");
                b.replace(at + 8, 21, "tokenizer.ggml.tokens");
            },
            false, "duplicate key 'tokenizer.ggml.tokens'");
        row(
            "empty key", [&](QByteArray &b) { patch<uint64_t>(b, 24, 0); }, false, "");
        row(
            "alignment wrong type",
            [&](QByteArray &b) {
                const qsizetype at = keyAt(b, "llama.block_count");
                b.replace(at + 8, 17, "general.alignment");
                patch<uint32_t>(b, at + 8 + 17, tI32);
            },
            false, "general.alignment has type INT32; it must be UINT32");
        row(
            "alignment not a power of two",
            [&](QByteArray &b) { b.replace(keyAt(b, "llama.block_count") + 8, 17, "general.alignment"); }, false,
            "general.alignment 5 is not a power of two");
        row(
            "alignment 64 moves the data past the end",
            [&](QByteArray &b) {
                const qsizetype at = keyAt(b, "llama.block_count");
                b.replace(at + 8, 17, "general.alignment");
                patch<uint32_t>(b, at + 8 + 17 + 4, 64);
            },
            false, "ends beyond the end of the file");
        row(
            "unknown tensor type", [&](QByteArray &b) { patch<uint32_t>(b, typeAt(embd, 2), 99); }, false,
            "tensor info 0 ('token_embd.weight'): unknown ggml type id 99");
        row(
            "removed tensor type", [&](QByteArray &b) { patch<uint32_t>(b, typeAt(embd, 2), 4); }, false,
            "unknown ggml type id 4");
        row(
            "n_dims 5", [&](QByteArray &b) { patch<uint32_t>(b, embd, 5); }, false, "5 dimensions");
        row(
            "negative dimension", [&](QByteArray &b) { patch<uint64_t>(b, embd + 4, uint64_t(1) << 63); }, false,
            "negative");
        row(
            "element count overflow",
            [&](QByteArray &b) {
                patch<uint64_t>(b, embd + 4, uint64_t(1) << 40);
                patch<uint64_t>(b, embd + 12, uint64_t(1) << 40);
            },
            false, "overflows 64 bits");
        row(
            "byte size overflow", [&](QByteArray &b) { patch<uint64_t>(b, embd + 12, (uint64_t(1) << 57) - 1); }, false,
            "overflows 64 bits");
        row(
            "ne[0] not a multiple of the block", [&](QByteArray &b) { patch<uint32_t>(b, typeAt(norm, 1), gQ4_K); },
            false, "first dimension 64 of a Q4_K tensor is not a multiple of its block size 256");
        row(
            "duplicate tensor name", [&](QByteArray &b) { b.replace(q0 - 19, 19, "blk.0.attn_k.weight"); }, false,
            "duplicate tensor name 'blk.0.attn_k.weight'");
        row(
            "offset past end", [&](QByteArray &b) { patch<uint64_t>(b, offsetAt(last, 1), uint64_t(1) << 40); }, false,
            "ends beyond the end of the file");
        row(
            "offset at the very end",
            [&](QByteArray &b) { patch<uint64_t>(b, offsetAt(last, 1), uint64_t(good.size() - 14176)); }, false,
            "ends beyond the end of the file");
        row(
            "offset wraps around", [&](QByteArray &b) { patch<uint64_t>(b, offsetAt(last, 1), ~uint64_t(31)); }, false,
            "ends beyond the end of the file");
        row(
            "misaligned offset", [&](QByteArray &b) { patch<uint64_t>(b, offsetAt(norm, 1), 131072 + 4); }, false,
            "is not aligned to 32 bytes");
        row(
            "overlapping tensors", [&](QByteArray &b) { patch<uint64_t>(b, offsetAt(norm, 1), 0); }, false, "overlap");
        row(
            "overlap by one block", [&](QByteArray &b) { patch<uint64_t>(b, offsetAt(norm, 1), 131072 - 32); }, false,
            "overlap");
        row(
            "data truncated", [](QByteArray &b) { b.truncate(1000000); }, false, "ends beyond the end of the file");
        row(
            "last byte missing", [](QByteArray &b) { b.chop(1); }, false, "'blk.4.ffn_norm.weight'");
        row(
            "infos only", [](QByteArray &b) { b.truncate(14152); }, false, "tensor data should start at byte 14176");

        // Well-formed files that are not usable llama models.
        row(
            "other architecture",
            [&](QByteArray &b) { b.replace(keyAt(b, "general.architecture") + 8 + 20 + 4 + 8, 5, "qwen2"); }, true,
            "unsupported architecture 'qwen2'");
        row(
            "missing required key",
            [&](QByteArray &b) { b.replace(keyAt(b, "llama.embedding_length") + 8 + 21, 1, "X"); }, true,
            "missing metadata 'llama.embedding_length'");
        row(
            "required key of the wrong type",
            [&](QByteArray &b) { patch<uint32_t>(b, keyAt(b, "llama.block_count") + 8 + 17, tF32); }, true,
            "'llama.block_count' is FLOAT32, expected an integer");
        row(
            "shape disagrees with the header", [&](QByteArray &b) { patch<uint64_t>(b, q0 + 12, 32); }, true,
            "tensor 'model.layers.0.self_attn.q_proj' (blk.0.attn_q.weight) has shape [32, 64]");
        row(
            "missing tensor", [&](QByteArray &b) { b.replace(q0 - 19, 19, "blk.0.attn_X.weight"); }, true,
            "missing tensor 'model.layers.0.self_attn.q_proj'");
        row(
            "block beyond block_count", [&](QByteArray &b) { b.replace(q0 - 19, 19, "blk.9.attn_q.weight"); }, true,
            "belongs to block 9 but the file declares 5 blocks");
        row(
            "rope dimension differs",
            [&](QByteArray &b) { patch<uint32_t>(b, keyAt(b, "llama.rope.dimension_count") + 8 + 26 + 4, 4); }, true,
            "rope.dimension_count 4 differs from the head dimension 8");
    }
    void malformedStories()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K.gguf");
        QFETCH(QByteArray, image);
        QFETCH(bool, parses);
        QFETCH(QString, fragment);
        const QString name = QStringLiteral("malformed.gguf");
        const QString file = tempPath(name);
        QVERIFY(writeFile(file, image));
        if (parses) {
            const GgufFile f = GgufFile::open(file.toStdString());
            QVERIFY(!f.tensors().empty());
        } else {
            QS_EXPECT_ERROR(GgufFile::open(file.toStdString()), name, fragment);
            QS_EXPECT_ERROR(parseExact(image, name.toStdString()), name, fragment);
        }
        QS_EXPECT_ERROR(GgufReader::open(file.toStdString()), name, fragment);
        // Without the magic no format claims the file, and the registry says so.
        const bool magicOk = image.startsWith("GGUF");
        QS_EXPECT_ERROR(
            openModel(file.toStdString()), name, magicOk ? fragment : QStringLiteral("not a recognised model"));
    }

    // Every prefix in the header and metadata, and a spread of prefixes in the data, fails cleanly.
    void truncatedEverywhere()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K.gguf");
        const QByteArray good = readAll(path);
        std::vector<qsizetype> cuts;
        for (qsizetype n = 0; n < 128; ++n)
            cuts.push_back(n);
        for (qsizetype n = 128; n < 14200; n += 11)
            cuts.push_back(n);
        for (qsizetype n = 14200; n < good.size(); n += 65521)
            cuts.push_back(n);
        cuts.push_back(good.size() - 1);
        for (qsizetype n : cuts) {
            const QByteArray prefix = good.left(n);
            QS_EXPECT_ERROR(parseExact(prefix, "cut.gguf"), QStringLiteral("cut.gguf"), QString());
        }
        // And a few through the file system and the reader.
        for (qsizetype n :
            { qsizetype(0), qsizetype(3), qsizetype(23), qsizetype(5000), qsizetype(14160), qsizetype(600000) }) {
            const QString file = tempPath(QStringLiteral("cut.gguf"));
            QVERIFY(writeFile(file, good.left(n)));
            QS_EXPECT_ERROR(GgufReader::open(file.toStdString()), QStringLiteral("cut.gguf"), QString());
        }
    }

    // ---- synthetic files --------------------------------------------------------------------------------

    void everyValueType()
    {
        GgufBuilder b;
        b.version = 2;
        b.scalar<uint8_t>("t.u8", tU8, 200);
        b.scalar<int8_t>("t.i8", tI8, -100);
        b.scalar<uint16_t>("t.u16", tU16, 60000);
        b.scalar<int16_t>("t.i16", tI16, -30000);
        b.scalar<uint32_t>("t.u32", tU32, 4000000000u);
        b.scalar<int32_t>("t.i32", tI32, -2000000000);
        b.scalar<float>("t.f32", tF32, 1.5f);
        b.boolean("t.bool", true);
        b.string("t.string", QByteArray("h\xC3\xA9llo"));
        b.string("t.empty", QByteArray());
        b.scalar<uint64_t>("t.u64", tU64, ~uint64_t(0));
        b.scalar<int64_t>("t.i64", tI64, -(int64_t(1) << 40));
        b.scalar<double>("t.f64", tF64, 0.1);
        b.array<uint8_t>("a.u8", tU8, { 1, 255 });
        b.array<int8_t>("a.i8", tI8, { -1, 1 });
        b.array<uint16_t>("a.u16", tU16, { 65535 });
        b.array<int16_t>("a.i16", tI16, { -2 });
        b.array<uint32_t>("a.u32", tU32, { 1, 2, 4000000000u });
        b.array<int32_t>("a.i32", tI32, { -7, 7 });
        b.array<float>("a.f32", tF32, { 0.5f, -0.25f });
        b.array<uint8_t>("a.bool", tBool, { 1, 0, 1 });
        b.strings("a.string", { "x", "", "zz" });
        b.array<uint64_t>("a.u64", tU64, { uint64_t(1) << 63 });
        b.array<int64_t>("a.i64", tI64, { -3 });
        b.array<double>("a.f64", tF64, { 2.5 });
        b.array<float>("a.empty", tF32, {});
        const GgufFile f = parseExact(b.build(), "types.gguf");
        QCOMPARE(f.version(), 2u);
        QCOMPARE(f.metadata().size(), size_t(26));
        QCOMPARE(f.metadata()[3].key, std::string("t.i16")); // file order kept
        QCOMPARE(*f.getU8("t.u8"), uint8_t(200));
        QCOMPARE(*f.getI8("t.i8"), int8_t(-100));
        QCOMPARE(*f.getU16("t.u16"), uint16_t(60000));
        QCOMPARE(*f.getI16("t.i16"), int16_t(-30000));
        QCOMPARE(*f.getU32("t.u32"), 4000000000u);
        QCOMPARE(*f.getI32("t.i32"), -2000000000);
        QCOMPARE(*f.getF32("t.f32"), 1.5f);
        QCOMPARE(*f.getBool("t.bool"), true);
        QCOMPARE(*f.getString("t.string"), std::string("h\xC3\xA9llo"));
        QCOMPARE(*f.getString("t.empty"), std::string());
        QCOMPARE(*f.getU64("t.u64"), ~uint64_t(0));
        QCOMPARE(*f.getI64("t.i64"), -(int64_t(1) << 40));
        QCOMPARE(*f.getF64("t.f64"), 0.1);
        // Lenient getters
        QCOMPARE(*f.getInteger("t.i8"), int64_t(-100));
        QCOMPARE(*f.getInteger("t.u32"), int64_t(4000000000));
        QCOMPARE(*f.getInteger("t.i16"), int64_t(-30000));
        QS_EXPECT_ERROR(f.getInteger("t.u64"), QStringLiteral("types.gguf"), QStringLiteral("out of range"));
        QCOMPARE(*f.getFloat("t.f32"), 1.5);
        QCOMPARE(*f.getFloat("t.f64"), 0.1);
        QCOMPARE(f.find("t.i32")->typeDescription(), std::string("INT32"));
        QCOMPARE(f.find("a.i64")->typeDescription(), std::string("ARRAY of INT64"));
        // Arrays
        QCOMPARE(*f.getU32Array("a.u32"), (std::vector<uint32_t> { 1, 2, 4000000000u }));
        QCOMPARE(*f.getI32Array("a.i32"), (std::vector<int32_t> { -7, 7 }));
        QCOMPARE(*f.getF32Array("a.f32"), (std::vector<float> { 0.5f, -0.25f }));
        QCOMPARE(*f.getStringArray("a.string"), (std::vector<std::string> { "x", "", "zz" }));
        QCOMPARE(*f.getIntegerArray("a.i8"), (std::vector<int64_t> { -1, 1 }));
        QCOMPARE(*f.getIntegerArray("a.u8"), (std::vector<int64_t> { 1, 255 }));
        QCOMPARE(*f.getIntegerArray("a.u16"), (std::vector<int64_t> { 65535 }));
        QCOMPARE(*f.getIntegerArray("a.i16"), (std::vector<int64_t> { -2 }));
        QCOMPARE(*f.getIntegerArray("a.i64"), (std::vector<int64_t> { -3 }));
        QS_EXPECT_ERROR(f.getIntegerArray("a.u64"), QStringLiteral("types.gguf"), QStringLiteral("out of range"));
        QS_EXPECT_ERROR(f.getIntegerArray("a.f32"), QStringLiteral("types.gguf"), QStringLiteral("ARRAY of integers"));
        QCOMPARE(f.find("a.bool")->integerAt(2), int64_t(1));
        QCOMPARE(f.find("a.f64")->floatAt(0), 2.5);
        QCOMPARE(*f.getArraySize("a.empty"), uint64_t(0));
        QCOMPARE(f.getF32Array("a.empty")->size(), size_t(0));
        QVERIFY(f.tensors().empty());
        QCOMPARE(f.alignment(), 32u);
    }

    void structuralErrors_data()
    {
        QTest::addColumn<QByteArray>("image");
        QTest::addColumn<QString>("fragment");
        {
            GgufBuilder b;
            b.scalar<uint8_t>("flag", tBool, 2);
            QTest::newRow("bool 2") << b.build() << QStringLiteral("boolean value 2 is neither 0 nor 1");
        }
        {
            GgufBuilder b;
            b.array<uint8_t>("flags", tBool, { 0, 1, 7 });
            QTest::newRow("bool array 7") << b.build() << QStringLiteral("boolean value 7");
        }
        {
            GgufBuilder b;
            b.u32("", 1);
            QTest::newRow("empty key") << b.build() << QStringLiteral("empty key");
        }
        {
            GgufBuilder b;
            b.u32("general.alignment", 0);
            QTest::newRow("alignment 0") << b.build() << QStringLiteral("general.alignment 0 is not a power of two");
        }
        {
            GgufBuilder b;
            b.scalar<uint64_t>("general.alignment", tU64, 32);
            QTest::newRow("alignment u64") << b.build() << QStringLiteral("has type UINT64; it must be UINT32");
        }
        {
            GgufBuilder b;
            b.tensor(QByteArray(64, 'n'), { 4 }, gF32, QByteArray(16, 0));
            QTest::newRow("name 64 bytes")
                << b.build() << QStringLiteral("tensor info 0: name is 64 bytes; GGUF allows at most 63");
        }
        {
            GgufBuilder b;
            b.tensor("t", { 32, 3 }, gQ3_K, QByteArray(330, 0));
            QTest::newRow("Q3_K ne[0] 32") << b.build() << QStringLiteral("not a multiple of its block size 256");
        }
        {
            GgufBuilder b;
            b.tensor("t", { 0, 1ull << 62 }, gF32, QByteArray());
            b.tensor("u", { 1ull << 62, 2 }, gF32, QByteArray());
            QTest::newRow("count overflow after a zero") << b.build() << QStringLiteral("'u'");
        }
        {
            GgufBuilder b;
            b.alignment = 64;
            b.u32("general.alignment", 64);
            b.tensor("a", { 8 }, gF32, QByteArray(32, 0));
            QByteArray image = b.build();
            // the builder placed nothing misaligned; move the tensor by 32 (aligned for 32, not for 64)
            const qsizetype info = tensorInfoAt(image, "a");
            patch<uint64_t>(image, info + 4 + 8 + 4, 32);
            QTest::newRow("misaligned for 64") << image << QStringLiteral("is not aligned to 64 bytes");
        }
    }
    void structuralErrors()
    {
        QFETCH(QByteArray, image);
        QFETCH(QString, fragment);
        QS_EXPECT_ERROR(parseExact(image, "synthetic.gguf"), QStringLiteral("synthetic.gguf"), fragment);
    }

    void alignmentAndGaps()
    {
        GgufBuilder b;
        b.alignment = 64;
        b.u32("general.alignment", 64);
        b.tensor("a", { 8 }, gF32, QByteArray(32, 1));
        b.tensor("b", { 32 }, gQ8_0, QByteArray(34, 2));
        b.tensor("empty", { 0, 5 }, gF32, QByteArray());
        const GgufFile f = parseExact(b.build());
        QCOMPARE(f.alignment(), 64u);
        QCOMPARE(f.dataStart() % 64, uint64_t(0));
        QCOMPARE(f.findTensor("b")->offset, uint64_t(64));
        QCOMPARE(f.findTensor("b")->nbytes, uint64_t(34));
        QCOMPARE(f.findTensor("empty")->numel, uint64_t(0));
        QCOMPARE(f.findTensor("empty")->rowCount(), uint64_t(0));
        // Gaps between tensors are allowed (the spec only asks for alignment): move 'b' further out.
        QByteArray image = b.build();
        image.append(QByteArray(128, 0));
        patch<uint64_t>(image, tensorInfoAt(image, "b") + 4 + 8 + 4, 192);
        QCOMPARE(parseExact(image).findTensor("b")->offset, uint64_t(192));
    }

    void tinyQuantizedModel()
    {
        const TinyLlama tiny = makeTinyLlama(false, true);
        const QString file = tempPath(QStringLiteral("tiny.gguf"));
        QVERIFY(writeFile(file, tiny.builder.build()));
        const std::unique_ptr<Model> m = GgufReader::open(file.toStdString());
        const HyperParams &h = m->hparams;
        QCOMPARE(h.hiddenSize, 256);
        QCOMPARE(h.numHeads, 4);
        QCOMPARE(h.numKvHeads, 2);
        QCOMPARE(h.headDim, 64);
        QCOMPARE(h.vocabSize, 8);
        QCOMPARE(h.maxPositions, 128);
        QCOMPARE(float(h.rmsEps), 1e-6f);
        QCOMPARE(h.ropeTheta, 500000.0);
        QCOMPARE(h.ropeScaling.type, std::string("linear"));
        QCOMPARE(h.ropeScaling.factor, 4.0);
        QCOMPARE(h.ropeScaling.originalMaxPositions, 32);
        QCOMPARE(h.bosTokenId, 6);
        QCOMPARE(h.eosTokenId, 7);
        QVERIFY(h.addBos);
        QVERIFY(h.attentionBias);
        QVERIFY(h.tiedEmbeddings);

        // Tied output: listed last, sharing the embedding's data, counted once.
        const Tensor &embed = m->tensor("model.embed_tokens");
        const Tensor &head = m->tensor("lm_head");
        QCOMPARE(m->tensors.back().name, std::string("lm_head"));
        QVERIFY(head.tied);
        QCOMPARE(head.role, TensorRole::LmHead);
        QCOMPARE(head.data, embed.data);
        QCOMPARE(head.sourceName, std::string("token_embd.weight"));
        int64_t expectedParams = 0;
        for (const Tensor &t : m->tensors)
            if (t.name != "lm_head")
                expectedParams += t.numel();
        QCOMPARE(m->parameterCount(), expectedParams);

        // Each tensor decodes like the reference decoder on the stored row (permuted for q/k).
        struct Check
        {
            const char *canonical;
            const char *gguf;
            DType dtype;
            bool permuted;
        };
        const Check checks[] = {
            { "model.embed_tokens", "token_embd.weight", DType::F16, false },
            { "model.layers.0.input_layernorm", "blk.0.attn_norm.weight", DType::F32, false },
            { "model.layers.0.self_attn.q_proj", "blk.0.attn_q.weight", DType::Q4_0, true },
            { "model.layers.0.self_attn.k_proj", "blk.0.attn_k.weight", DType::Q4_1, true },
            { "model.layers.1.self_attn.q_proj", "blk.1.attn_q.weight", DType::Q4_K, true },
            { "model.layers.1.self_attn.k_proj", "blk.1.attn_k.weight", DType::Q6_K, true },
            { "model.layers.0.self_attn.v_proj", "blk.0.attn_v.weight", DType::Q5_0, false },
            { "model.layers.0.self_attn.o_proj", "blk.0.attn_output.weight", DType::Q5_1, false },
            { "model.layers.1.post_attention_layernorm", "blk.1.ffn_norm.weight", DType::BF16, false },
            { "model.layers.1.mlp.gate_proj", "blk.1.ffn_gate.weight", DType::Q8_0, false },
            { "model.layers.1.mlp.up_proj", "blk.1.ffn_up.weight", DType::Q4_K, false },
            { "model.layers.1.mlp.down_proj", "blk.1.ffn_down.weight", DType::Q6_K, false },
            { "model.norm", "output_norm.weight", DType::F32, false },
        };
        for (const Check &c : checks) {
            const Tensor &t = m->tensor(c.canonical);
            QCOMPARE(t.sourceName, std::string(c.gguf));
            QCOMPARE(t.dtype, c.dtype);
            const QByteArray &bytes = tiny.data[c.gguf];
            QCOMPARE(t.storedBytes, uint64_t(bytes.size()));
            const std::vector<float> all = m->readMatrix(t);
            for (int64_t r = 0; r < t.rows; ++r) {
                const int64_t stored = c.permuted ? hfRowToMetaRow(r, 64) : r;
                const std::vector<float> expected
                    = referenceRow(bytes, tiny.types[c.gguf], uint64_t(t.cols), uint64_t(stored));
                QVERIFY2(sameBits(all.data() + r * t.cols, expected.data(), size_t(t.cols)),
                    qPrintable(QStringLiteral("%1 row %2").arg(QString::fromLatin1(c.canonical)).arg(r)));
            }
        }

        // q/k biases follow their rows: canonical element c holds stored element hfRowToMetaRow(c).
        const Tensor &qb = m->tensor("model.layers.1.self_attn.q_proj.bias");
        QCOMPARE(qb.role, TensorRole::Bias);
        QCOMPARE(qb.block, 1);
        QCOMPARE(qb.rows, int64_t(1));
        QCOMPARE(qb.cols, int64_t(256));
        const std::vector<float> qBias = m->readMatrix(qb);
        const std::vector<float> kBias = m->readMatrix(m->tensor("model.layers.0.self_attn.k_proj.bias"));
        for (int c = 0; c < 256; ++c)
            QCOMPARE(qBias[size_t(c)], float(hfRowToMetaRow(c, 64)));
        for (int c = 0; c < 128; ++c)
            QCOMPARE(kBias[size_t(c)], float(1000 + hfRowToMetaRow(c, 64)));
        QVERIFY(kBias[1] != 1001.0f); // element 1 moved

        // Order: embedding, block 0 (q, q bias, k, k bias ...), block 1, norm, lm_head.
        QCOMPARE(m->tensors[0].name, std::string("model.embed_tokens"));
        QCOMPARE(m->tensors[1].name, std::string("model.layers.0.input_layernorm"));
        QCOMPARE(m->tensors[2].name, std::string("model.layers.0.self_attn.q_proj"));
        QCOMPARE(m->tensors[3].name, std::string("model.layers.0.self_attn.q_proj.bias"));
        QCOMPARE(m->tensors[4].name, std::string("model.layers.0.self_attn.k_proj"));
    }

    void concurrentReads()
    {
        const TinyLlama tiny = makeTinyLlama(true, false);
        const QString file = tempPath(QStringLiteral("tiny-untied.gguf"));
        QVERIFY(writeFile(file, tiny.builder.build()));
        const std::unique_ptr<Model> m = GgufReader::open(file.toStdString());
        QVERIFY(!m->hparams.tiedEmbeddings);
        QVERIFY(!m->tensor("lm_head").tied);
        QCOMPARE(m->tensor("lm_head").dtype, DType::Q8_0);
        QVERIFY(!m->hparams.attentionBias);
        const Tensor &q = m->tensor("model.layers.1.self_attn.q_proj");
        const std::vector<float> expected = m->readMatrix(q);
        std::atomic<int> mismatches { 0 };
        std::vector<std::thread> threads;
        for (int i = 0; i < 4; ++i)
            threads.emplace_back([&, i] {
                std::vector<float> row(256);
                for (int rep = 0; rep < 4; ++rep)
                    for (int64_t r = i; r < q.rows; r += 4) {
                        q.data->readRows(r, 1, row.data());
                        if (!sameBits(row.data(), expected.data() + r * 256, 256))
                            ++mismatches;
                    }
            });
        for (std::thread &t : threads)
            t.join();
        QCOMPARE(mismatches.load(), 0);
        // The model outlives the GgufFile it was built from: the mapping is kept by the tensors.
    }

    void modelProblems_data()
    {
        QTest::addColumn<QByteArray>("image");
        QTest::addColumn<QString>("fragment");
        {
            GgufBuilder b;
            addLlamaKeys(b);
            b.tensor("token_embd.weight", { 256, 2 }, gQ3_K, QByteArray(220, 0));
            QTest::newRow("undecodable type")
                << b.build()
                << QStringLiteral("'token_embd.weight' is stored as Q3_K, which QuantScope "
                                  "cannot decode (supported: F32, F16");
        }
        {
            GgufBuilder b;
            b.u32("llama.embedding_length", 256);
            b.tensor("x", { 4 }, gF32, QByteArray(16, 0));
            QTest::newRow("no architecture") << b.build() << QStringLiteral("missing metadata 'general.architecture'");
        }
        {
            GgufBuilder b;
            b.string("general.architecture", "llama");
            b.u32("llama.context_length", 16);
            b.u32("llama.embedding_length", 256);
            b.u32("llama.block_count", 2);
            b.u32("llama.feed_forward_length", 256);
            b.array<uint32_t>("llama.attention.head_count", tU32, { 4, 8 });
            b.f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
            b.tensor("token_embd.weight", { 256, 2 }, gF32, QByteArray(2048, 0));
            QTest::newRow("per-layer heads") << b.build() << QStringLiteral("differs between layers (4 and 8)");
        }
        {
            GgufBuilder b;
            b.string("general.architecture", "llama");
            b.u32("llama.context_length", 16);
            b.u32("llama.embedding_length", 256);
            b.u32("llama.block_count", 2);
            b.u32("llama.feed_forward_length", 256);
            b.u32("llama.attention.head_count", 4);
            b.tensor("token_embd.weight", { 256, 2 }, gF32, QByteArray(2048, 0));
            QTest::newRow("no rms epsilon")
                << b.build() << QStringLiteral("missing metadata 'llama.attention.layer_norm_rms_epsilon'");
        }
        {
            GgufBuilder b;
            b.string("general.architecture", "llama");
            b.scalar<uint64_t>("llama.context_length", tU64, uint64_t(1) << 40);
            b.tensor("token_embd.weight", { 256, 2 }, gF32, QByteArray(2048, 0));
            QTest::newRow("value out of int range")
                << b.build() << QStringLiteral("'llama.context_length' value 1099511627776 is out of range");
        }
        {
            GgufBuilder b;
            b.string("general.architecture", "llama");
            b.u32("llama.context_length", 16);
            b.u32("llama.embedding_length", 256);
            b.u32("llama.block_count", 1);
            b.u32("llama.feed_forward_length", 256);
            b.u32("llama.attention.head_count", 4);
            b.f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
            b.tensor("token_embd.weight", { 256, 2, 3 }, gF32, QByteArray(6144, 0));
            QTest::newRow("3-D tensor") << b.build() << QStringLiteral("has 3 dimensions");
        }
        {
            GgufBuilder b;
            b.string("general.architecture", "llama");
            b.u32("llama.context_length", 16);
            b.u32("llama.embedding_length", 256);
            b.u32("llama.block_count", 1);
            b.u32("llama.feed_forward_length", 256);
            b.u32("llama.attention.head_count", 4);
            b.f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
            b.tensor("blk.0.attn_q.weight", { 256, 100 }, gF32, QByteArray(102400, 0));
            QTest::newRow("q rows not whole heads") << b.build() << QStringLiteral("not a whole number of heads of 64");
        }
    }
    void modelProblems()
    {
        QFETCH(QByteArray, image);
        QFETCH(QString, fragment);
        const QString file = tempPath(QStringLiteral("problem.gguf"));
        QVERIFY(writeFile(file, image));
        QS_EXPECT_ERROR(GgufReader::open(file.toStdString()), QStringLiteral("problem.gguf"), fragment);
    }

    void modelWarnings()
    {
        TinyLlama t = makeTinyLlama(false, false);
        t.builder.tensor("rope_freqs.weight", { 32 }, gF32, QByteArray(128, 0));
        t.builder.tensor("blk.0.attn_q_norm.weight", { 64 }, gF32, QByteArray(256, 0));
        const QString file = tempPath(QStringLiteral("extra.gguf"));
        QVERIFY(writeFile(file, t.builder.build()));
        const std::unique_ptr<Model> m = GgufReader::open(file.toStdString());
        QCOMPARE(m->warnings.size(), size_t(2));
        QVERIFY(QString::fromStdString(m->warnings[0]).contains(QStringLiteral("rope_freqs.weight")));
        QVERIFY(QString::fromStdString(m->warnings[1]).contains(QStringLiteral("blk.0.attn_q_norm.weight")));
        QVERIFY(!m->find("rope_freqs"));
    }

    // A model built from a caller's buffer decodes from that buffer (no file, no mapping).
    void modelFromBuffer()
    {
        const TinyLlama tiny = makeTinyLlama(false, false);
        const QByteArray image = tiny.builder.build();
        const std::vector<uint8_t> buffer(image.begin(), image.end());
        const GgufFile f = GgufFile::parse(buffer.data(), buffer.size(), "buffer.gguf");
        QVERIFY(!f.mapping());
        const std::unique_ptr<Model> m = GgufReader::build(f, "buffer.gguf");
        const Tensor &gate = m->tensor("model.layers.0.mlp.gate_proj");
        std::vector<float> row(256);
        m->readRows(gate, 3, 1, row.data());
        const std::vector<float> expected = referenceRow(tiny.data["blk.0.ffn_gate.weight"], gQ8_0, 256, 3);
        QVERIFY(sameBits(row.data(), expected.data(), 256));
    }
};

QTEST_GUILESS_MAIN(TestGguf)
#include "tst_gguf.moc"
