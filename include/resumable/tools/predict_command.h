// `trainer predict --checkpoint FILE [--beam-size K] [--nbest K] [--decode-batch-size N] [WORD...]`: pronounces words with
// a trained model, as a G2P user would: one `word<TAB>PH O N E S` line per word (with --nbest K,
// K lines per word with a third column, the mean log-probability per phoneme), words from the
// command line or else from stdin, one per line. A word with a character the model never saw is
// an error on stderr for that word; the others are still pronounced, and the exit code is 2.
#pragma once

namespace resumable {

// argv[0] is "predict". Returns the exit code.
int run_predict_command(int argc, char** argv);

}  // namespace resumable
