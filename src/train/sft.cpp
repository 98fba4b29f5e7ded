// Supervised fine-tuning: conversations → assistant-masked batches → the shared training loop (see pretrain.h).
#include <cmath>
#include <cstdio>
#include <random>

#include "core/mmap_file.h"
#include "llmforge/chat_data.h"
#include "llmforge/comm.h"
#include "llmforge/error.h"
#include "llmforge/log.h"
#include "llmforge/pretrain.h"

namespace llmforge {

SftReport sft(SftOptions o) {
    SftReport rep;
    auto model = std::make_shared<Model>(load_model(o.model_path));
    if (!model->vocab || model->vocab->size() == 0) throw_bad_input("'%s' has no tokenizer", o.model_path.c_str());
    Vocab vocab = *model->vocab;
    if (!o.template_path.empty()) vocab.chat_template = read_text_file(o.template_path);
    if (vocab.chat_template.empty()) {
        if (vocab.find("<|im_start|>") < 0 || vocab.find("<|im_end|>") < 0)
            throw_bad_input("'%s' has no chat template and no <|im_start|>/<|im_end|> tokens for ChatML: give --template", o.model_path.c_str());
        vocab.chat_template = kChatMLTemplate;  // saved with the tuned model
    }
    const ChatFormat fmt(vocab);
    PretrainOptions& t = o.train;
    if (t.seq_len <= 0) t.seq_len = model->config.n_ctx;
    if (t.seq_len > model->config.n_ctx)
        throw_bad_input("--seq-len %lld is longer than the model's context (%lld)", static_cast<long long>(t.seq_len), static_cast<long long>(model->config.n_ctx));
    ChatDataOptions dopt;
    dopt.max_tokens = t.seq_len + 1;  // L tokens give L − 1 predictions
    dopt.skip_bad = o.skip_bad;
    ChatDataset data = load_chat_jsonl(o.data_path, fmt, dopt);
    const bool lead = world().rank() == 0;
    if (lead) {
        for (const std::string& p : data.problems) log_text(strprintf("llmforge: skipped %s\n", p.c_str()));
        if (data.skipped > static_cast<int64_t>(data.problems.size()))
            log_text(strprintf("llmforge: … and %lld more\n", static_cast<long long>(data.skipped - static_cast<int64_t>(data.problems.size()))));
    }
    std::vector<ChatTokens> val;
    if (!o.val_path.empty()) {
        ChatDataset v = load_chat_jsonl(o.val_path, fmt, dopt);
        val = std::move(v.examples);
    } else if (data.examples.size() >= 2 && o.val_fraction > 0) {  // a seeded, fixed hold-out
        std::mt19937_64 rng(t.seed + 12345);
        std::shuffle(data.examples.begin(), data.examples.end(), rng);
        const size_t nv = std::max<size_t>(1, static_cast<size_t>(std::llround(o.val_fraction * static_cast<double>(data.examples.size()))));
        val.assign(std::make_move_iterator(data.examples.end() - static_cast<long>(nv)), std::make_move_iterator(data.examples.end()));
        data.examples.resize(data.examples.size() - nv);
    }
    if (data.examples.empty()) throw_bad_input("'%s' has no usable conversations (%lld skipped)", o.data_path.c_str(), static_cast<long long>(data.skipped));
    rep.examples = static_cast<int64_t>(data.examples.size());
    rep.val_examples = static_cast<int64_t>(val.size());
    rep.skipped = data.skipped;
    rep.tokens = data.tokens;
    rep.trained_tokens = data.trained_tokens;

    const int32_t pad = vocab.eos >= 0 ? vocab.eos : 0;
    TrainSetup s;
    s.what = "fine-tuning";
    s.vocab = vocab;
    s.cfg = model->config;
    s.cfg.n_ctx = std::max(s.cfg.n_ctx, t.seq_len);
    const std::string base_path = o.model_path;
    s.init = [model, base_path]() mutable {  // called once (a fresh start or, under LoRA, a resume)
        if (model) {
            Model m = std::move(*model);
            model.reset();
            return m;
        }
        return load_model(base_path);
    };
    auto train = std::make_unique<ChatBatches>(&data.examples, t.batch_size, pad, t.seed, true);
    rep.fill = train->fill();
    const double batches_per_epoch = static_cast<double>(train->windows());
    if (t.steps <= 0) t.steps = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.epochs * batches_per_epoch / static_cast<double>(t.grad_accum))));
    s.train = std::move(train);
    if (!val.empty()) s.val = std::make_unique<ChatBatches>(&val, 1, pad, t.seed, false);
    if (t.eval_batches <= 0 || t.eval_batches > static_cast<int64_t>(val.size())) t.eval_batches = static_cast<int64_t>(val.size());
    s.sample_text = [fmt = std::make_shared<ChatFormat>(s.vocab)](const Vocab&, const std::string& prompt) {
        return fmt->render(nlohmann::ordered_json::array({{{"role", "user"}, {"content", prompt.empty() ? "Hello" : prompt}}}), true);
    };
    s.lora = o.lora;
    s.save_merged = o.merge;
    s.hparams_extra = {{"data", o.data_path}, {"examples", rep.examples}, {"base_model", o.model_path}};
    if (lead)
        log_text(strprintf("llmforge: %lld conversations (%lld held out, %lld skipped), %lld tokens of which %lld assistant tokens in the loss; "
                             "batches %.0f%% tokens, %.0f%% padding; %lld steps\n",
                     static_cast<long long>(rep.examples), static_cast<long long>(rep.val_examples), static_cast<long long>(rep.skipped),
                     static_cast<long long>(rep.tokens), static_cast<long long>(rep.trained_tokens), 100 * rep.fill, 100 * (1 - rep.fill),
                     static_cast<long long>(t.steps)));
    rep.result = run_training(t, s);
    return rep;
}

}  // namespace llmforge
