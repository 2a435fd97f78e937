#include "eval/CalibrationRun.h"

#include <chrono>

#include "common/Error.h"
#include "eval/TextSource.h"
#include "model/Forward.h"
#include "tokenizer/Tokenizer.h"

namespace qs::core {

CalibrationRunResult runCalibration(const std::shared_ptr<const Model> &model, const std::string &textPath,
                                    const CalibrationRunOptions &options, Progress &progress)
{
    const auto t0 = std::chrono::steady_clock::now();
    CalibrationRunResult result;
    result.modelPath = model->path;

    if (options.mode == CalibrationMode::Windows) {
        const TokenizedText text = tokenizeTextFile(*model, textPath, progress);
        result.calibration = makeCalibrationWindows(text.tokens, options.samples, options.seqLen, options.seed, textPath);
        describeCalibrationText(result.calibration, textPath, text.tokenizer);
    } else {
        progress.message("reading " + textPath);
        const std::string text = readTextFile(textPath);
        const std::unique_ptr<Tokenizer> tokenizer = loadTokenizer(*model);
        std::vector<std::vector<int32_t>> documents;
        for (const std::string &doc : splitDocuments(text, options.documentSeparator))
            documents.push_back(encodeWithSpecials(*tokenizer, doc, model->hparams.addBos));
        result.calibration = makeCalibrationDocuments(documents, options.samples, options.seqLen, options.seed, textPath);
        describeCalibrationText(result.calibration, textPath, tokenizer->name());
        result.calibration.separator = options.documentSeparator;
    }

    ForwardOptions fo;
    fo.threads = options.threads;
    ForwardEngine engine(model, fo);
    ActivationStatsCollector collector(options.stats);
    progress.setTotal(double(result.calibration.samples.size()));
    progress.message("running calibration samples");
    for (const CalibrationSample &sample : result.calibration.samples) {
        progress.throwIfCancelled();
        Logits none; // no LM head needed unless the lm_head input is observed
        if (collector.wantsBlock(-1)) {
            none.first = int64_t(sample.tokens.size()) - 1;
            none.last = int64_t(sample.tokens.size());
            none.sink = [](int64_t, int64_t, const float *) {};
        }
        engine.forward(sample.tokens.data(), int64_t(sample.tokens.size()), none, &collector, &progress);
        progress.advance(1);
    }
    result.stats = collector.takeResults();
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return result;
}

} // namespace qs::core
