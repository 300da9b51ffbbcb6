// The harness's verdict on every input of a directory, one line each ("OK" or
// the finding with storage ids, addresses and source lines replaced by "#"), in
// the mode NORMGRAPH_FUZZ_MODE selects: for checking that a change to the
// harness (or the product) leaves every verdict as it was.
//   bazel-bin/fuzz/verdicts DIR... > before.txt   (and again after; diff them)
// With NORMGRAPH_FUZZ_TRACE=1 the trace of every input goes to stderr.

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <vector>

#include "fuzz/graph_replay_harness.h"

int main(int argc, char** argv) {
  const normgraph::fuzz::FuzzMode mode = normgraph::fuzz::FuzzModeFromEnv();
  static const std::regex ids("storage #[0-9]+|@?0x[0-9a-f]+|\\.cc:[0-9]+");
  int findings = 0;
  for (int a = 1; a < argc; ++a) {
    std::vector<std::string> names;
    if (DIR* dir = opendir(argv[a])) {
      while (dirent* e = readdir(dir)) {
        if (e->d_name[0] != '.') names.push_back(e->d_name);
      }
      closedir(dir);
    } else {
      std::fprintf(stderr, "cannot open %s\n", argv[a]);
      return 2;
    }
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      std::ifstream in(std::string(argv[a]) + "/" + n, std::ios::binary);
      const std::vector<uint8_t> input{std::istreambuf_iterator<char>(in),
                                       std::istreambuf_iterator<char>()};
      const absl::Status s = normgraph::fuzz::RunGraphReplayInput(input, mode);
      findings += !s.ok();
      std::printf(
          "%s: %s\n", n.c_str(),
          s.ok()
              ? "OK"
              : std::regex_replace(std::string(s.message()), ids, "#").c_str());
    }
  }
  return findings == 0 ? 0 : 1;
}
