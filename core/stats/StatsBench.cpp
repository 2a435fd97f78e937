#include "stats/StatsBench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <vector>

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <filesystem>

#include "io/FormatRegistry.h"
#include "stats/ParallelChunks.h"
#include "stats/WeightStats.h"

namespace qs::core {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start)
{
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Process CPU time, all threads (std::clock on POSIX).
double cpuSeconds()
{
    return double(std::clock()) / double(CLOCKS_PER_SEC);
}

double gbps(uint64_t bytes, double seconds)
{
    return seconds > 0.0 ? double(bytes) / seconds / 1e9 : 0.0;
}

// Tensors whose data is read once (a tied lm_head shares the embedding's).
std::vector<const Tensor *> distinctTensors(const Model &model)
{
    std::vector<const Tensor *> out;
    std::map<const TensorData *, bool> seen;
    for (const Tensor &t : model.tensors)
        if (!t.data || seen.emplace(t.data.get(), true).second)
            out.push_back(&t);
    return out;
}

struct ByteChunk
{
    const uint8_t *data;
    size_t bytes;
};

uint64_t sumWords(const uint8_t *p, size_t n)
{
    uint64_t sum = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8); // stored bytes need not be 8-aligned
        sum += w;
    }
    for (; i < n; ++i)
        sum += p[i];
    return sum;
}

uint64_t rawRead(const std::vector<ByteChunk> &chunks, Progress &progress)
{
    detail::ChunkErrors errors;
    uint64_t total = 0;
    const int64_t n = int64_t(chunks.size());
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : total)
    for (int64_t i = 0; i < n; ++i) {
        errors.run([&] {
            progress.throwIfCancelled();
            total += sumWords(chunks[size_t(i)].data, chunks[size_t(i)].bytes);
            progress.advance(double(chunks[size_t(i)].bytes));
        });
    }
    errors.rethrow();
    return total;
}

// The files the model was opened from: a file, or a folder's weight files.
std::vector<std::string> modelFiles(const std::string &path)
{
    namespace fs = std::filesystem;
    std::vector<std::string> files;
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
        files.push_back(path);
        return files;
    }
    for (const fs::directory_entry &e : fs::directory_iterator(path, ec))
        if (e.is_regular_file(ec) && e.path().extension() == ".safetensors")
            files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

struct FilePiece
{
    int fd;
    uint64_t offset;
    size_t bytes;
};

// pread(2) of every piece into the thread's buffer, summed like the raw read. Returns false when a file
// cannot be read (the phase is then left out).
bool fileRead(const std::vector<FilePiece> &pieces, size_t pieceBytes, uint64_t &checksum, Progress &progress)
{
    detail::ChunkErrors errors;
    std::atomic<bool> ok { true };
    uint64_t total = 0;
    const int64_t n = int64_t(pieces.size());
#pragma omp parallel reduction(+ : total)
    {
        std::vector<uint8_t> buffer(pieceBytes);
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < n; ++i) {
            errors.run([&] {
                progress.throwIfCancelled();
                const FilePiece &p = pieces[size_t(i)];
                size_t got = 0;
                while (got < p.bytes) {
                    const ssize_t r = ::pread(p.fd, buffer.data() + got, p.bytes - got, off_t(p.offset + got));
                    if (r <= 0) {
                        ok = false;
                        return;
                    }
                    got += size_t(r);
                }
                total += sumWords(buffer.data(), p.bytes);
                progress.advance(double(p.bytes));
            });
        }
    }
    errors.rethrow();
    checksum ^= total;
    return ok;
}

double decodeAll(const Model &model, const std::vector<const Tensor *> &tensors, Progress &progress)
{
    constexpr int64_t chunkElements = StatsOptions {}.chunkElements;
    double sink = 0.0;
    for (const Tensor *t : tensors) {
        if (t->rows <= 0 || t->cols <= 0)
            continue;
        const int64_t chunkRows = detail::rowsPerChunk(t->cols, chunkElements);
        const int64_t chunks = (t->rows + chunkRows - 1) / chunkRows;
        detail::ChunkErrors errors;
        double tensorSink = 0.0;
#pragma omp parallel reduction(+ : tensorSink)
        {
            std::vector<float> buffer;
#pragma omp for schedule(dynamic, 1)
            for (int64_t c = 0; c < chunks; ++c) {
                errors.run([&] {
                    progress.throwIfCancelled();
                    const int64_t first = c * chunkRows;
                    const int64_t count = std::min(chunkRows, t->rows - first);
                    buffer.resize(size_t(count * t->cols));
                    model.readRows(*t, first, count, buffer.data());
                    tensorSink += double(buffer.front()) + double(buffer.back());
                    progress.advance(double(count) / double(t->rows) * double(t->storedBytes));
                });
            }
        }
        errors.rethrow();
        sink += tensorSink;
    }
    return sink;
}

} // namespace

StatsBenchResult benchStats(const std::string &modelPath, Progress &progress)
{
    StatsBenchResult r;
    r.threads = omp_get_max_threads();

    progress.message("Opening " + modelPath);
    const Clock::time_point openStart = Clock::now();
    const std::unique_ptr<Model> model = openModel(modelPath);
    r.openSeconds = secondsSince(openStart);
    r.format = model->format;

    const std::vector<const Tensor *> tensors = distinctTensors(*model);
    r.tensors = int(tensors.size());
    for (const Tensor *t : tensors) {
        r.totalBytes += t->storedBytes;
        r.totalValues += uint64_t(std::max<int64_t>(t->numel(), 0));
    }

    // Raw read: 4 MiB pieces of each tensor's stored bytes, so threads share even one big tensor.
    std::vector<ByteChunk> chunks;
    r.rawReadAvailable = true;
    for (const Tensor *t : tensors) {
        const uint8_t *p = t->data ? t->data->storedData() : nullptr;
        if (!p && t->storedBytes > 0) {
            r.rawReadAvailable = false;
            break;
        }
        constexpr size_t piece = size_t(4) << 20;
        for (uint64_t off = 0; off < t->storedBytes; off += piece)
            chunks.push_back({ p + off, size_t(std::min<uint64_t>(piece, t->storedBytes - off)) });
    }
    if (r.rawReadAvailable) {
        progress.message("Reading stored bytes (first touch)");
        progress.setTotal(double(r.totalBytes));
        Clock::time_point start = Clock::now();
        r.checksum = rawRead(chunks, progress);
        r.firstReadSeconds = secondsSince(start);
        r.firstReadGBps = gbps(r.totalBytes, r.firstReadSeconds);

        progress.message("Reading stored bytes (warm)");
        progress.setTotal(double(r.totalBytes));
        start = Clock::now();
        const double cpuStart = cpuSeconds();
        const uint64_t again = rawRead(chunks, progress);
        r.readSeconds = secondsSince(start);
        r.readCpuSeconds = cpuSeconds() - cpuStart;
        r.readGBps = gbps(r.totalBytes, r.readSeconds);
        r.checksum ^= again;
    }

    // File read (context): the model's files through pread(2).
    {
        std::vector<int> fds;
        std::vector<FilePiece> pieces;
        constexpr size_t piece = size_t(4) << 20;
        bool opened = true;
        for (const std::string &f : modelFiles(modelPath)) {
            const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                opened = false;
                break;
            }
            fds.push_back(fd);
            const off_t size = ::lseek(fd, 0, SEEK_END);
            for (uint64_t off = 0; size > 0 && off < uint64_t(size); off += piece)
                pieces.push_back({ fd, off, size_t(std::min<uint64_t>(piece, uint64_t(size) - off)) });
            r.fileBytes += size > 0 ? uint64_t(size) : 0;
        }
        if (opened && !pieces.empty()) {
            progress.message("Reading the files with pread (warm)");
            progress.setTotal(double(r.fileBytes));
            uint64_t sink = 0;
            fileRead(pieces, piece, sink, progress); // warms the page cache for files not read yet
            progress.setTotal(double(r.fileBytes));
            const Clock::time_point start = Clock::now();
            const double cpuStart = cpuSeconds();
            const bool ok = fileRead(pieces, piece, sink, progress);
            r.fileReadSeconds = secondsSince(start);
            r.fileReadCpuSeconds = cpuSeconds() - cpuStart;
            r.fileReadGBps = gbps(r.fileBytes, r.fileReadSeconds);
            r.checksum ^= sink;
            if (!ok)
                r.fileBytes = 0;
        } else {
            r.fileBytes = 0;
        }
        for (const int fd : fds)
            ::close(fd);
    }

    progress.message("Decoding to float32");
    progress.setTotal(double(r.totalBytes));
    Clock::time_point start = Clock::now();
    double cpuStart = cpuSeconds();
    const double sink = decodeAll(*model, tensors, progress);
    r.decodeSeconds = secondsSince(start);
    r.decodeCpuSeconds = cpuSeconds() - cpuStart;
    r.decodeGBps = gbps(r.totalBytes, r.decodeSeconds);
    uint64_t sinkBits = 0;
    std::memcpy(&sinkBits, &sink, sizeof sinkBits);
    r.checksum ^= sinkBits;

    progress.message("Computing statistics");
    start = Clock::now();
    cpuStart = cpuSeconds();
    const std::vector<WeightStats> stats = computeModelStats(*model, StatsOptions::defaults(), progress);
    r.statsSeconds = secondsSince(start);
    r.statsCpuSeconds = cpuSeconds() - cpuStart;
    r.statsGBps = gbps(r.totalBytes, r.statsSeconds);
    for (const WeightStats &s : stats)
        r.checksum += s.count;
    return r;
}

} // namespace qs::core
