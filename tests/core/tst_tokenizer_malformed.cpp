// Tokenizers given bad input: broken tokenizer.json files, truncated llama2.c tokenizer.bin, GGUF files
// without (or with broken) tokenizer metadata, ids outside the vocabulary, and text that is not UTF-8.
// Every failure must be an Error that names the file; no input may crash or hang a tokenizer.
#include <QTemporaryDir>
#include <QTest>

#include <random>

#include <nlohmann/json.hpp>

#include "HfTestSupport.h"
#include "TestData.h"
#include "common/Error.h"
#include "model/Model.h"
#include "tokenizer/Tokenizer.h"

using namespace qs::core;
using namespace qs::test;

namespace {

// Runs f and returns the Error's message ("" when nothing was thrown; other exceptions fail the test).
template <typename F> std::string errorOf(F &&f)
{
    try {
        f();
    } catch (const Error &e) {
        return e.what();
    }
    return {};
}

#define QVERIFY_ERROR(expr, ...)                                                                                       \
    do {                                                                                                               \
        const std::string message_ = errorOf([&] { (void)(expr); });                                                   \
        QVERIFY2(!message_.empty(), "no Error from " #expr);                                                           \
        /* std::string copies: arguments may be temporaries' data (QByteArray::constData()) */                         \
        for (const std::string &part_ : std::initializer_list<std::string> { __VA_ARGS__ })                            \
            QVERIFY2(message_.find(part_) != std::string::npos,                                                        \
                qPrintable(QStringLiteral("'%1' lacks '%2'")                                                           \
                               .arg(QString::fromStdString(message_), QString::fromStdString(part_))));                \
    } while (false)

// Minimal GGUF v3 images with metadata only (formats.md 2.1/2.2).
class GgufBuilder
{
public:
    GgufBuilder &string(const std::string &key, const std::string &value)
    {
        header(key, 8);
        str(value);
        return *this;
    }
    GgufBuilder &u32(const std::string &key, uint32_t value)
    {
        header(key, 4);
        raw(&value, 4);
        return *this;
    }
    GgufBuilder &strings(const std::string &key, const std::vector<std::string> &values)
    {
        header(key, 9);
        const uint32_t type = 8;
        raw(&type, 4);
        const uint64_t n = values.size();
        raw(&n, 8);
        for (const std::string &v : values)
            str(v);
        return *this;
    }
    QByteArray build() const
    {
        QByteArray out("GGUF");
        const uint32_t version = 3;
        const uint64_t tensors = 0;
        out.append(reinterpret_cast<const char *>(&version), 4);
        out.append(reinterpret_cast<const char *>(&tensors), 8);
        out.append(reinterpret_cast<const char *>(&m_count), 8);
        out += m_body;
        return out;
    }

private:
    void raw(const void *p, int n) { m_body.append(static_cast<const char *>(p), n); }
    void str(const std::string &s)
    {
        const uint64_t n = s.size();
        raw(&n, 8);
        m_body.append(s.data(), qsizetype(s.size()));
    }
    void header(const std::string &key, uint32_t type)
    {
        str(key);
        raw(&type, 4);
        ++m_count;
    }
    QByteArray m_body;
    uint64_t m_count = 0;
};

// A small valid SentencePiece-style tokenizer.json to break in different ways.
nlohmann::json tinyJson()
{
    return nlohmann::json::parse(R"({
        "version": "1.0",
        "added_tokens": [{"id": 1, "content": "<s>", "special": true}],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": false,
                  "vocab": {"<unk>": 0, "<s>": 1, "▁": 2, "a": 3, "b": 4, "ab": 5, "▁ab": 6},
                  "merges": ["a b", "▁ ab"]}
    })");
}

} // namespace

class TestTokenizerMalformed : public QObject
{
    Q_OBJECT
private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void tinyJsonWorks()
    {
        const std::unique_ptr<Tokenizer> tok = loadTokenizerFromFile(write("ok/tokenizer.json", tinyJson().dump()));
        QCOMPARE(tok->encode("ab ab"), (std::vector<int32_t> { 6, 6 }));
        QCOMPARE(tok->encode("abba"), (std::vector<int32_t> { 6, 4, 3 }));
        // No byte fallback: unknown characters become <unk>, consecutive ones fused into one.
        QCOMPARE(tok->encode("xyz ab"), (std::vector<int32_t> { 2, 0, 6 }));
        QCOMPARE(tok->decode({ 1, 6, 6 }), std::string("ab ab"));
        // A vocabulary with neither byte fallback nor <unk> cannot encode "x": an Error, not a silent drop.
        nlohmann::json j = tinyJson();
        j["model"]["unk_token"] = nullptr;
        const std::unique_ptr<Tokenizer> strict = loadTokenizerFromFile(write("strict/tokenizer.json", j.dump()));
        QCOMPARE(strict->encode("ab"), (std::vector<int32_t> { 6 }));
        QVERIFY_ERROR(strict->encode("x"), "tokenizer.json", "cannot encode");
    }

    void brokenJson_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("expected");
        const auto variant = [](auto change) {
            nlohmann::json j = tinyJson();
            change(j);
            return QString::fromStdString(j.dump());
        };
        QTest::newRow("not json") << "{\"model\": "
                                  << "not valid JSON";
        QTest::newRow("array") << "[1, 2]"
                               << "not a tokenizer.json";
        QTest::newRow("no model") << variant([](auto &j) { j.erase("model"); }) << "no 'model' object";
        QTest::newRow("no vocab") << variant([](auto &j) { j["model"].erase("vocab"); }) << "no 'vocab' object";
        QTest::newRow("vocab not object")
            << variant([](auto &j) { j["model"]["vocab"] = nlohmann::json::array(); }) << "no 'vocab' object";
        QTest::newRow("empty vocab") << variant([](auto &j) { j["model"]["vocab"] = nlohmann::json::object(); })
                                     << "vocab is empty";
        QTest::newRow("bad id") << variant([](auto &j) { j["model"]["vocab"]["a"] = "three"; }) << "vocab entry 'a'";
        QTest::newRow("negative id") << variant([](auto &j) { j["model"]["vocab"]["a"] = -3; }) << "vocab entry 'a'";
        QTest::newRow("merge unknown left") << variant([](auto &j) { j["model"]["merges"].push_back("x b"); })
                                            << "refers to 'x', which is not in the vocabulary";
        QTest::newRow("merge unknown right") << variant([](auto &j) {
            j["model"]["merges"].push_back({ "a", "y" });
        }) << "refers to 'y', which is not in the vocabulary";
        QTest::newRow("merge result unknown") << variant([](auto &j) { j["model"]["merges"].push_back("b a"); })
                                              << "refers to 'ba', which is not in the vocabulary";
        QTest::newRow("merge without space")
            << variant([](auto &j) { j["model"]["merges"].push_back("ab"); }) << "not two pieces";
        QTest::newRow("merge triple") << variant([](auto &j) {
            j["model"]["merges"].push_back({ "a", "b", "c" });
        }) << "neither";
        QTest::newRow("merge number") << variant([](auto &j) { j["model"]["merges"].push_back(7); }) << "neither";
        QTest::newRow("merges not list") << variant([](auto &j) { j["model"]["merges"] = "a b"; }) << "not a list";
        QTest::newRow("unigram") << variant([](auto &j) { j["model"]["type"] = "Unigram"; })
                                 << "'Unigram' is not supported";
        QTest::newRow("regex normalizer") << variant([](auto &j) {
            j["normalizer"]["normalizers"][1]["pattern"] = { { "Regex", " +" } };
        }) << "only literal";
        QTest::newRow("nfkc") << variant([](auto &j) {
            j["normalizer"] = { { "type", "NFKC" } };
        }) << "normalizer 'NFKC' is not supported";
        QTest::newRow("unknown split") << variant([](auto &j) {
            j["pre_tokenizer"]
                = { { "type", "Split" }, { "pattern", { { "Regex", "\\w+" } } }, { "behavior", "Isolated" } };
        }) << "pattern is not one of the supported";
        QTest::newRow("whitespace pre") << variant([](auto &j) {
            j["pre_tokenizer"] = { { "type", "Whitespace" } };
        }) << "pre_tokenizer 'Whitespace' is not supported";
        QTest::newRow("added without id")
            << variant([](auto &j) { j["added_tokens"][0].erase("id"); }) << "no valid 'id'";
        QTest::newRow("added clash") << variant([](auto &j) { j["added_tokens"][0]["id"] = 3; })
                                     << "clashes with vocab piece 'a'";
        QTest::newRow("wrong type") << variant([](auto &j) { j["model"]["byte_fallback"] = "yes"; })
                                    << "not true/false";
        QTest::newRow("prefix") << variant([](auto &j) { j["model"]["continuing_subword_prefix"] = "##"; })
                                << "'continuing_subword_prefix' is not supported";
    }
    void brokenJson()
    {
        QFETCH(QString, text);
        QFETCH(QString, expected);
        const std::string path = write(
            QStringLiteral("broken/%1/tokenizer.json").arg(QTest::currentDataTag()).toStdString(), text.toStdString());
        QVERIFY_ERROR(loadTokenizerFromFile(path), "tokenizer.json", expected.toUtf8().constData());
    }

    void brokenTokenizerConfig()
    {
        const std::string path = write("badconfig/tokenizer.json", tinyJson().dump());
        write("badconfig/tokenizer_config.json", "{ nope");
        QVERIFY_ERROR(loadTokenizerFromFile(path), "tokenizer_config.json", "not valid JSON");
    }

    // Any bytes at all: no crash, no exception, and exact round trips (byte fallback / byte alphabet).
    void nonUtf8Text_data()
    {
        QTest::addColumn<QString>("source");
        QTest::addColumn<int>("vocab");
        QTest::newRow("llama-spm gguf") << "tokenizers/ggml-vocab-llama-spm.gguf" << 0;
        QTest::newRow("llama-spm json") << "tokenizers/llama-spm-tokenizer-json/tokenizer.json" << 0;
        QTest::newRow("gpt-2 gguf") << "tokenizers/ggml-vocab-gpt-2.gguf" << 0;
        QTest::newRow("gpt-2 json") << "tokenizers/gpt2-tokenizer-json/tokenizer.json" << 0;
        QTest::newRow("llama2.c") << "models/stories260K-llama2c/tok512.bin" << 512;
    }
    void nonUtf8Text()
    {
        QFETCH(QString, source);
        QFETCH(int, vocab);
        QS_REQUIRE_TESTDATA(path, "tokenizers/ggml-vocab-llama-spm.gguf");
        const std::unique_ptr<Tokenizer> tok = loadTokenizerFromFile(testDataPath(source).toStdString(), vocab);
        std::vector<std::string> texts;
        for (int b = 0; b < 256; ++b)
            texts.push_back(std::string(1, char(b)) + "x" + std::string(1, char(b)));
        texts.push_back(std::string("a\0b", 3));
        texts.push_back("\xc0\xaf overlong, \xed\xa0\x80 surrogate, \xf4\x90\x80\x80 too big, \xe2\x82 cut");
        std::mt19937 rng(1234);
        for (int i = 0; i < 200; ++i) {
            std::string s(size_t(rng() % 40), '\0');
            for (char &c : s)
                c = char(rng() % 4 == 0 ? 0x80 + rng() % 0x80 : rng() % 256);
            texts.push_back(s);
        }
        for (const std::string &t : texts) {
            std::vector<int32_t> ids;
            try {
                ids = tok->encode(t);
            } catch (const std::exception &e) {
                QFAIL(e.what());
            }
            for (int32_t id : ids)
                QVERIFY(id >= 0 && id < tok->vocabSize());
            QVERIFY(tok->decode(ids) == t);
        }
    }

    void idsOutsideVocabulary()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K.gguf");
        const std::unique_ptr<Tokenizer> tok = loadTokenizerFromFile(path.toStdString());
        QVERIFY_ERROR(tok->decode({ 5, 512 }), "token id 512 is outside the vocabulary (512 tokens)");
        QVERIFY_ERROR(tok->tokenToPiece(-1), "token id -1");
        const std::unique_ptr<Tokenizer> l2c
            = loadTokenizerFromFile(testDataPath("models/stories260K-llama2c/tok512.bin").toStdString(), 512);
        QVERIFY_ERROR(l2c->decode({ 1000 }), "token id 1000");
        QVERIFY_ERROR(encodeWithSpecials(*loadTokenizerFromFile(write("nobos/tokenizer.json", noBosJson())), "a", true),
            "no BOS token");
    }

    void truncatedTokenizerBin()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K-llama2c/tok512.bin");
        const QByteArray full = readAll(path);
        QCOMPARE(full.size(), 6227);
        for (int cut : { 0, 2, 4, 7, 11, 20, 3000, 6226 }) {
            const std::string file
                = write(QStringLiteral("trunc%1/tok512.bin").arg(cut).toStdString(), full.left(cut).toStdString());
            QVERIFY_ERROR(loadTokenizerFromFile(file, 512), "tok512.bin: truncated");
            if (cut > 4)
                QVERIFY_ERROR(loadTokenizerFromFile(file, 0), "tok512.bin");
        }
        const std::string whole = write("whole/tok512.bin", full.toStdString());
        QVERIFY_ERROR(loadTokenizerFromFile(whole, 513), "tok512.bin: truncated", "token 512");
        QVERIFY_ERROR(loadTokenizerFromFile(whole, -1), "tok512.bin", "invalid vocabulary size");
        QByteArray hugeLength = full;
        const int32_t length = 0x7fffffff;
        std::memcpy(hugeLength.data() + 8, &length, 4); // token 0's length
        QVERIFY_ERROR(loadTokenizerFromFile(write("huge/tok512.bin", hugeLength.toStdString()), 512), "tok512.bin",
            "truncated: token 0 has length 2147483647");
        QVERIFY_ERROR(loadTokenizerFromFile(m_dir.path().toStdString() + "/absent/tokenizer.bin", 512), "tokenizer.bin",
            "not found");
    }

    void ggufWithoutTokenizer_data()
    {
        QTest::addColumn<QByteArray>("image");
        QTest::addColumn<QString>("expected");
        const std::vector<std::string> tokens = { "<unk>", "<s>", "</s>", "a" };
        QTest::newRow("no tokenizer keys") << GgufBuilder().string("general.architecture", "llama").build()
                                           << "no tokenizer in the metadata (tokenizer.ggml.model is missing)";
        QTest::newRow("no tokens") << GgufBuilder().string("tokenizer.ggml.model", "llama").build()
                                   << "tokenizer.ggml.tokens is missing";
        QTest::newRow("bert")
            << GgufBuilder().string("tokenizer.ggml.model", "bert").strings("tokenizer.ggml.tokens", tokens).build()
            << "tokenizer.ggml.model 'bert' is not supported";
        QTest::newRow("gpt2 without merges")
            << GgufBuilder().string("tokenizer.ggml.model", "gpt2").strings("tokenizer.ggml.tokens", tokens).build()
            << "tokenizer.ggml.merges is missing";
        QTest::newRow("unknown pre") << GgufBuilder()
                                            .string("tokenizer.ggml.model", "gpt2")
                                            .strings("tokenizer.ggml.tokens", tokens)
                                            .strings("tokenizer.ggml.merges", {})
                                            .string("tokenizer.ggml.pre", "deepseek-coder")
                                            .build()
                                     << "tokenizer.ggml.pre 'deepseek-coder' is not supported";
        QTest::newRow("bos outside") << GgufBuilder()
                                            .string("tokenizer.ggml.model", "llama")
                                            .strings("tokenizer.ggml.tokens", tokens)
                                            .u32("tokenizer.ggml.bos_token_id", 4)
                                            .build()
                                     << "'tokenizer.ggml.bos_token_id' is 4, outside the vocabulary (4 tokens)";
        QTest::newRow("tokens not strings")
            << GgufBuilder().string("tokenizer.ggml.model", "llama").u32("tokenizer.ggml.tokens", 3).build()
            << "tokenizer.ggml.tokens";
        QTest::newRow("scores count") << GgufBuilder()
                                             .string("tokenizer.ggml.model", "llama")
                                             .strings("tokenizer.ggml.tokens", tokens)
                                             .strings("tokenizer.ggml.scores", { "x" })
                                             .build()
                                      << "tokenizer.ggml.scores";
    }
    void ggufWithoutTokenizer()
    {
        QFETCH(QByteArray, image);
        QFETCH(QString, expected);
        const QString path = m_dir.filePath(QStringLiteral("gguf-%1.gguf").arg(m_counter++));
        writeAll(path, image);
        QVERIFY_ERROR(loadTokenizerFromFile(path.toStdString()), qPrintable(QFileInfo(path).fileName()),
            expected.toUtf8().constData());
    }

    void minimalGgufTokenizers()
    {
        // The smallest vocabularies that load: SPM without scores/types, and byte-level BPE whose vocabulary
        // lacks most bytes (those fall back to <unk>-less failure, which must be an Error, not a crash).
        const QString spmPath = m_dir.filePath("spm.gguf");
        writeAll(spmPath,
            GgufBuilder()
                .string("tokenizer.ggml.model", "llama")
                .strings("tokenizer.ggml.tokens", { "<unk>", "<s>", "</s>", "\xE2\x96\x81", "a" })
                .build());
        const std::unique_ptr<Tokenizer> spm = loadTokenizerFromFile(spmPath.toStdString());
        QCOMPARE(spm->encode("a a"), (std::vector<int32_t> { 3, 4, 3, 4 }));
        QCOMPARE(spm->encode("b"), (std::vector<int32_t> { 3, 0 })); // no byte tokens: <unk>
        QCOMPARE(spm->decode({ 3, 4, 3, 4 }), std::string("a a"));

        const QString bpePath = m_dir.filePath("bpe.gguf");
        writeAll(bpePath,
            GgufBuilder()
                .string("tokenizer.ggml.model", "gpt2")
                .strings("tokenizer.ggml.tokens", { "a", "b", "ab", "\xC4\xA0" })
                .strings("tokenizer.ggml.merges", { "a b", "a c", "b a" })
                .build());
        const std::unique_ptr<Tokenizer> bpe = loadTokenizerFromFile(bpePath.toStdString());
        QCOMPARE(bpe->encode("ab a"), (std::vector<int32_t> { 2, 3, 0 }));
        QVERIFY_ERROR(bpe->encode("c"), "bpe.gguf", "cannot encode byte <0x63>");
    }

    // tokenizer.ggml.pre picks the split pattern: GPT-2 keeps digit runs whole, Llama 3 cuts them in threes
    // (and skips merging pieces that are already tokens), Qwen2 cuts every digit.
    void ggufPreTokenizers_data()
    {
        QTest::addColumn<QString>("pre");
        QTest::addColumn<QString>("name");
        QTest::addColumn<std::vector<int32_t>>("ids");
        QTest::newRow("default") << "default"
                                 << "gpt2-bpe (GGUF)" << std::vector<int32_t> { 4, 6 };
        QTest::newRow("llama-bpe") << "llama-bpe"
                                   << "llama3-bpe (GGUF)" << std::vector<int32_t> { 5, 3 };
        QTest::newRow("qwen2") << "qwen2"
                               << "qwen2-bpe (GGUF)" << std::vector<int32_t> { 0, 1, 2, 3 };
    }
    void ggufPreTokenizers()
    {
        QFETCH(QString, pre);
        QFETCH(QString, name);
        QFETCH(std::vector<int32_t>, ids);
        const QString path = m_dir.filePath(QStringLiteral("pre-%1.gguf").arg(pre));
        writeAll(path,
            GgufBuilder()
                .string("tokenizer.ggml.model", "gpt2")
                .strings("tokenizer.ggml.tokens", { "1", "2", "3", "4", "12", "123", "34" })
                .strings("tokenizer.ggml.merges", { "3 4", "1 2", "12 3" })
                .string("tokenizer.ggml.pre", pre.toStdString())
                .build());
        const std::unique_ptr<Tokenizer> tok = loadTokenizerFromFile(path.toStdString());
        QCOMPARE(QString::fromStdString(tok->name()), name);
        QCOMPARE(tok->encode("1234"), ids);
        QCOMPARE(tok->decode(ids), std::string("1234"));
    }

    void modelWithoutTokenizer()
    {
        Model model;
        model.format = "gguf";
        model.path = "/somewhere/model.gguf";
        QVERIFY_ERROR(loadTokenizer(model), "model.gguf", "no tokenizer");
        model.format = "llama2c";
        model.tokenizerPath = "/somewhere/tokenizer.bin";
        model.hparams.vocabSize = 0;
        QVERIFY_ERROR(loadTokenizer(model), "vocabulary size unknown");
        QVERIFY_ERROR(loadTokenizerFromFile(m_dir.path().toStdString()), "folder has no tokenizer.json");
    }

private:
    std::string write(const std::string &relative, const std::string &bytes)
    {
        const QString path = m_dir.filePath(QString::fromStdString(relative));
        QDir().mkpath(QFileInfo(path).path());
        writeAll(path, QByteArray(bytes.data(), qsizetype(bytes.size())));
        return path.toStdString();
    }
    static std::string noBosJson()
    {
        nlohmann::json j = tinyJson();
        j["added_tokens"] = nlohmann::json::array();
        j["model"]["vocab"].erase("<s>");
        return j.dump();
    }

    QTemporaryDir m_dir;
    int m_counter = 0;
};

QTEST_GUILESS_MAIN(TestTokenizerMalformed)
#include "tst_tokenizer_malformed.moc"
