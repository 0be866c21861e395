#include "resumable/tools/predict_command.h"

#include <cctype>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "resumable/config/cli.h"
#include "resumable/data/batch.h"
#include "resumable/model/decoding.h"
#include "resumable/tools/tool_args.h"
#include "resumable/training/checkpoint_verify.h"
#include "resumable/util/errors.h"
#include "resumable/util/help_text.h"

namespace resumable {
namespace {

std::string help_text() {
  HelpPage page;
  page.usage = "trainer predict --checkpoint FILE [--ensemble FILE,...] [--beam-size K] [--nbest K]\n"
               "                       [--decode-batch-size N] [--score] [WORD...]";
  page.about =
      "Pronounces each WORD (or each line of stdin when no WORD is given) with the checkpoint's model\n"
      "(with --ensemble, with it and the other checkpoints' models together, their next-phoneme\n"
      "probabilities averaged). Words are lower-cased.";
  page.groups = {
      {"Model",
       {{"--checkpoint FILE", "the checkpoint whose model pronounces (required)"},
        {"--ensemble FILE,...", "more checkpoints whose models decode together with it"}}},
      {"Decoding",
       {{"--beam-size K", "hypotheses per word: 1 greedy (the default), more for beam search"},
        {"--nbest K", "print the K best hypotheses per word (the beam is at least K), best first, with their score"},
        {"--decode-batch-size N",
         "words decoded together, for speed and memory [default 256]. (The old --batch-size, easily taken for "
         "training's global optimizer batch, still works in this release.)"},
        {"--score",
         "score given pronunciations instead: input lines word<TAB>PH O N E S; takes no --nbest or --beam-size"}}},
      {"Output (one line per word, or per hypothesis)",
       {{"word<TAB>PH O N E S", "greedy decoding or beam search"},
        {"word<TAB>PH O N E S<TAB>SCORE",
         "with --nbest or --score: SCORE is the mean log-probability per phoneme (EOS included), to rerank "
         "candidates with another model or compare pronunciations"}}},
      {"Options", {{"-h, --help", "show this help"}}},
  };
  page.footer =
      "Exit codes: 0 done, 2 bad arguments or a word with a character (or, with --score, a phoneme) the\n"
      "model does not know; that word is reported on stderr and skipped, the others are still printed.";
  return format_help(page);
}

struct Word {
  std::string text;
  std::vector<int64_t> source;
  std::string phones;            // --score: the pronunciation to score (upper case, no stress)
  std::vector<int64_t> target;   // and its phoneme ids
};

// Each word's `target` as beam_search() would score it (decoding.h: sequence_scores), so a scored
// line and an --nbest line of the same pronunciation agree.
std::vector<double> score_targets(const Ensemble& models, const at::Tensor& src, const std::vector<const Word*>& words) {
  const int64_t b = static_cast<int64_t>(words.size());
  int64_t longest = 1;
  for (const Word* w : words) longest = std::max<int64_t>(longest, static_cast<int64_t>(w->target.size()));
  auto phonemes = torch::full({b, longest}, Vocabulary::kPad, torch::kLong);
  for (int64_t i = 0; i < b; ++i) {
    const auto& t = words[static_cast<size_t>(i)]->target;
    if (!t.empty()) phonemes[i].narrow(0, 0, static_cast<int64_t>(t.size())).copy_(torch::tensor(t, torch::kLong));
  }
  auto scores = sequence_scores(models, src, phonemes).contiguous();
  return std::vector<double>(scores.data_ptr<float>(), scores.data_ptr<float>() + b);
}

}  // namespace

int run_predict_command(int argc, char** argv) {
  std::vector<std::string> raw(argv + 1, argv + argc);
  for (const auto& a : raw)
    if (a == "--help" || a == "-h") {
      std::cout << help_text();
      return exit_code::kDone;
    }
  ToolArgs a = parse_tool_args("predict", raw,
                               {"--checkpoint", "--ensemble", "--beam-size", "--nbest", "--decode-batch-size"},
                               {"--score"}, {{"--batch-size", "--decode-batch-size"}});
  auto path = a.value("--checkpoint");
  if (!path) throw ConfigError("predict: --checkpoint FILE is required (see trainer predict --help)");
  const int64_t nbest = a.integer("--nbest", 0, 1);
  const int64_t beam = std::max(a.integer("--beam-size", 1, 1), nbest);
  const int64_t batch_size = a.integer("--decode-batch-size", 256, 1);
  const bool score = a.has("--score");
  if (score && (a.value("--nbest") || a.value("--beam-size")))
    throw ConfigError("predict: --score scores given pronunciations; it takes no --nbest or --beam-size");

  SavedModel m = load_saved_model(read_checkpoint(*path));
  Ensemble models{m.model};
  if (auto list = a.value("--ensemble")) {
    for (const auto& member : comma_separated(*list))
      models.push_back(load_ensemble_member(member, m.graphemes, m.phonemes, *path).model);
    if (models.size() == 1) throw ConfigError("predict: --ensemble: expected checkpoint files separated by commas");
  }
  torch::NoGradGuard no_grad;

  std::vector<std::string> inputs = a.positional;
  if (inputs.empty())
    for (std::string line; std::getline(std::cin, line);) {
      // A scored line may end in its tab: --nbest prints an empty pronunciation so.
      while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())) && !(score && line.back() == '\t'))
        line.pop_back();
      size_t start = 0;
      while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start]))) ++start;
      if (start < line.size()) inputs.push_back(line.substr(start));
    }

  int failed = 0;
  std::vector<Word> words;
  for (const auto& line : inputs) {
    std::string input = line, phones;
    if (score) {
      auto tab = line.find('\t');
      if (tab == std::string::npos) {
        std::fprintf(stderr, "trainer predict: --score: '%s': expected word<TAB>PH O N E S; skipped\n", line.c_str());
        ++failed;
        continue;
      }
      input = line.substr(0, tab);
      phones = line.substr(tab + 1);
    }
    std::string lower = input;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    Word w{input, {}, {}, {}};
    std::string unknown;
    std::vector<std::string> symbols = graphemes_of(lower);
    for (size_t i = 0; i < symbols.size(); ++i) {
      int64_t id = m.graphemes.id(symbols[i]);
      w.source.push_back(id);
      if (id != Vocabulary::kUnk) continue;
      // Name the character, not its bytes: a UTF-8 sequence is one unknown character.
      std::string c = symbols[i];
      while ((static_cast<unsigned char>(c[0]) & 0xc0) == 0xc0 && i + 1 < symbols.size() &&
             (static_cast<unsigned char>(symbols[i + 1][0]) & 0xc0) == 0x80)
        c += symbols[++i];
      if (unknown.find("'" + c + "'") == std::string::npos) unknown += (unknown.empty() ? "'" : ", '") + c + "'";
    }
    if (w.source.empty()) unknown = "(empty)";
    if (!unknown.empty()) {
      std::fprintf(stderr, "trainer predict: '%s': character %s not in the model's vocabulary (%zu graphemes); skipped\n",
                   input.c_str(), unknown.c_str(), m.graphemes.symbols().size());
      ++failed;
      continue;
    }
    if (score) {
      std::istringstream in(phones);
      for (std::string given; in >> given;) {
        const std::string ph = stress_free_phoneme(given);  // as the dictionary is read
        w.phones += (w.phones.empty() ? "" : " ") + ph;
        int64_t id = m.phonemes.id(ph);
        // `unknown` is still empty here: a word with an unknown character was skipped above.
        if (id < Vocabulary::kNumSpecial) unknown += (unknown.empty() ? "'" : ", '") + ph + "'";
        w.target.push_back(id);
      }
      if (!unknown.empty()) {
        std::fprintf(stderr, "trainer predict: '%s': phoneme %s not in the model's vocabulary (%zu phonemes); skipped\n",
                     input.c_str(), unknown.c_str(), m.phonemes.symbols().size());
        ++failed;
        continue;
      }
    }
    words.push_back(std::move(w));
  }

  for (size_t start = 0; start < words.size(); start += static_cast<size_t>(batch_size)) {
    size_t end = std::min(words.size(), start + static_cast<size_t>(batch_size));
    std::vector<const std::vector<int64_t>*> sources;
    int64_t longest = 0;
    for (size_t i = start; i < end; ++i) {
      sources.push_back(&words[i].source);
      longest = std::max<int64_t>(longest, static_cast<int64_t>(words[i].source.size()));
    }
    at::Tensor src = collate_sources(sources, c10::Device(c10::kCPU));
    if (score) {
      std::vector<const Word*> batch;
      for (size_t i = start; i < end; ++i) batch.push_back(&words[i]);
      auto scores = score_targets(models, src, batch);
      for (size_t i = start; i < end; ++i)
        std::printf("%s\t%s\t%.4f\n", words[i].text.c_str(), words[i].phones.c_str(), scores[i - start]);
      std::fflush(stdout);
      continue;
    }
    auto [seqs, scores] = beam_search(models, src, longest + 8, beam);  // the evaluator's limit
    seqs = seqs.contiguous();
    const int64_t shown = nbest > 0 ? nbest : 1;
    for (size_t i = start; i < end; ++i) {
      for (int64_t k = 0; k < shown; ++k) {
        at::Tensor row = seqs[static_cast<int64_t>(i - start)][k];
        std::vector<int64_t> ids(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
        std::string phones;
        for (const auto& p : m.phonemes.decode(ids)) phones += (phones.empty() ? "" : " ") + p;
        if (nbest > 0)
          std::printf("%s\t%s\t%.4f\n", words[i].text.c_str(), phones.c_str(),
                      scores[static_cast<int64_t>(i - start)][k].item<double>());
        else
          std::printf("%s\t%s\n", words[i].text.c_str(), phones.c_str());
      }
    }
    std::fflush(stdout);
  }
  return failed == 0 ? exit_code::kDone : exit_code::kBadInput;
}

}  // namespace resumable
