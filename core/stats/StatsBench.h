#pragma once
// Benchmark of the weight-statistics pass against plain reading of the same bytes (house style,
// practice 13: the figure and its baseline come from one run). For the CLI ("bench stats").
//
// Phases, in order, each multi-threaded over chunks like the statistics themselves:
//   1. open the model through openModel() (timed: openSeconds);
//   2. raw read, first touch: sum every tensor's stored bytes as 64-bit words through
//      TensorData::storedData() — includes page-in from disk when the file is not cached;
//   3. raw read again, warm: the baseline the statistics compare with;
//   3b. file read, warm: the model's files read with pread(2) into a 4 MiB buffer per thread and summed
//      the same way (what a program that reads the file rather than mapping it pays: one copy out of the
//      page cache). For context only; the goal stays relative to the raw read;
//   4. decode: Model::readRows to float32 only, no statistics (what conversion alone costs);
//   5. computeModelStats() with default options (see WeightStats.h: F16/BF16 tensors are counted from their
//      stored codes, other dtypes decoded twice).
// Throughputs are stored bytes / seconds (GB = 1e9 bytes). Each phase also records the process CPU time
// it used (all threads): on a machine shared with other work the wall time includes waiting for a core,
// and CPU seconds per value is the steadier figure. Tied tensors are counted once. When the reader
// does not expose stored bytes for some tensor, phases 2–3 are skipped and rawReadAvailable is false.

#include <cstdint>
#include <string>

#include "common/Progress.h"

namespace qs::core {

struct StatsBenchResult
{
    std::string format;
    int threads = 0; // OpenMP threads used
    int tensors = 0; // tensors analysed (tied copies excluded)
    uint64_t totalBytes = 0; // their stored bytes
    uint64_t totalValues = 0; // their element count

    double openSeconds = 0.0;

    bool rawReadAvailable = false;
    double firstReadSeconds = 0.0;
    double firstReadGBps = 0.0;
    double readSeconds = 0.0; // warm
    double readGBps = 0.0;
    double readCpuSeconds = 0.0;

    uint64_t fileBytes = 0; // bytes of the model's files (headers included); 0 when not measured
    double fileReadSeconds = 0.0;
    double fileReadGBps = 0.0;
    double fileReadCpuSeconds = 0.0;

    double decodeSeconds = 0.0;
    double decodeGBps = 0.0;
    double decodeCpuSeconds = 0.0;

    double statsSeconds = 0.0;
    double statsGBps = 0.0;
    double statsCpuSeconds = 0.0;

    uint64_t checksum = 0; // of the raw read, so the reads cannot be optimised away
};

// Throws Error when the model cannot be opened, Cancelled when cancelled.
StatsBenchResult benchStats(const std::string &modelPath, Progress &progress);

} // namespace qs::core
