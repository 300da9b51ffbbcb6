// normgraph: the main job. Builds a Qwen3.5- (or Gemma3-) shaped norm stack,
// loads weights from a safetensors checkpoint (synthetic, a file, a sharded
// Hugging Face checkpoint or a model directory with config.json), captures
// decode graphs for every batch bucket, then runs RL-style cycles: a weight
// update, then replays at random batch sizes, each compared with eager
// execution bit for bit. With --inject=legacy-loader it runs the same scenario
// with SGLang's pre-fix loader under every policy and shows what each does
// with the bug.
//
//   bazel run -c opt //tools:normgraph -- --help
//
// Everything the run will do is validated before anything is allocated: every
// flag (a message lists the valid values), config.json, the checkpoints'
// files and indexes, the device, and the memory the run needs against what the
// machine can hold. Exit codes: 0 every replay as expected, 1 the check found a
// problem, 2 bad input (or a run too large for this machine), 3 internal error.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/step_buffers.h"
#include "core/tensor_util.h"
#include "graph/bucketed_graphs.h"
#include "layers/checkpoint_dir.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/hf_config.h"
#include "layers/legacy_zero_centered_rms_norm.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/safetensors/writer.h"
#include "layers/weights.h"
#include "nlohmann/json.hpp"

namespace normgraph {
namespace {

using Json = nlohmann::ordered_json;

// Exit codes (README.md, --help).
constexpr int kExitOk = 0;
constexpr int kExitCheckFailed = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitInternal = 3;

// Bounds on sizes. Real models are far below them; memory is checked on top.
constexpr int64_t kMaxBucket = 4096;
constexpr int64_t kMaxBuckets = 64;
constexpr int64_t kMaxCycles = 100000;
constexpr int64_t kMaxReplaysPerCycle = 10000;
constexpr int64_t kMaxReplays = 1000000;  // cycles x replays per cycle
constexpr int64_t kMinMaxMemory = 16 << 20;
// Replays after the cycles with nothing moved between them (SteadyReplays).
constexpr int kSteadyReplays = 16;

// ---------------------------------------------------------------------------
// Small formatting helpers.

// Three significant digits: 1.23, 12.3, 123.
std::string ThreeDigits(double v, const char* unit) {
  const int decimals = v < 10 ? 2 : v < 100 ? 1 : 0;
  return absl::StrFormat("%.*f %s", decimals, v, unit);
}

std::string FormatBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  if (u == 0) return absl::StrFormat("%.0f B", bytes);
  return ThreeDigits(bytes, units[u]);
}

// A duration in nanoseconds, in the unit that keeps 3 significant digits.
std::string FormatDuration(double ns) {
  if (ns < 1e3) return ThreeDigits(ns, "ns");
  if (ns < 1e6) return ThreeDigits(ns / 1e3, "us");
  if (ns < 1e9) return ThreeDigits(ns / 1e6, "ms");
  return ThreeDigits(ns / 1e9, "s");
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string StatusCodeName(absl::StatusCode code) {
  return absl::AsciiStrToUpper(absl::StatusCodeToString(code));
}

// What the run was doing, for errors that carry no context (bad_alloc).
std::string& Stage() {
  static auto* stage = new std::string("starting");
  return *stage;
}

// ---------------------------------------------------------------------------
// Flags. normgraph parses its own command line so that every value is
// validated with a message listing the valid ones, bad input always exits 2,
// --help / -h exit 0, and a flag given explicitly can be told from a default.

struct FlagDef {
  const char* name;
  const char* value;  // "" for a boolean flag
  const char* def;    // default, as shown in --help
  const char* help;
  const char* group;
};

const std::vector<FlagDef>& FlagDefs() {
  static const auto* defs = new std::vector<FlagDef>{
      // Model.
      {"model", "NAME", "qwen3_5",
       "Norm stack: qwen3_5 (Qwen3.5: zero-centred norms, gated "
       "linear-attention norms, q/k norms; three linear-attention layers to "
       "one full) or gemma3. With --model_dir: from its config.json.",
       "Model"},
      {"model_dir", "DIR", "",
       "A Hugging Face model directory: config.json gives the model and its "
       "sizes (every size flag then conflicts), and its checkpoint (one file "
       "or sharded) is loaded unless --checkpoint names another.",
       "Model"},
      {"layers", "N", "32 / 26",
       "Decoder layers, 1 to 1024. Default: transformers' config default "
       "(32 for qwen3_5, 26 for gemma3).",
       "Model"},
      {"hidden", "N", "4096 / 2304",
       "Hidden size, 1 to 65536. Default: transformers' config default (4096 "
       "for qwen3_5, 2304 for gemma3). Head sizes keep their defaults.",
       "Model"},
      {"dtype", "NAME", "bf16",
       "Activation and weight dtype: bf16, f16 or f32. With --model_dir: the "
       "config's dtype.",
       "Model"},
      // Checkpoints.
      {"checkpoint", "PATH", "",
       "Checkpoint loaded first: a .safetensors file, a "
       "model.safetensors.index.json (sharded), or a directory holding "
       "either. Empty: a synthetic checkpoint (random weights, Hugging Face "
       "names) written to a new temporary file in $TMPDIR (or /tmp), removed "
       "once read.",
       "Checkpoints"},
      {"update_checkpoint", "PATH", "",
       "Checkpoint for the weight updates (same forms): cycles alternate "
       "between it and the first checkpoint (A -> B -> A). Empty: each cycle "
       "pushes freshly generated weights from memory, as an RL trainer does.",
       "Checkpoints"},
      {"prefix", "PREFIX", "auto",
       "Where the text model's tensors are in the checkpoints: 'auto' detects "
       "it ('model.' for *ForCausalLM, 'model.language_model.' for "
       "transformers 5 multimodal models, 'language_model.model.' for older "
       "ones); or give it (an empty value: names without a prefix).",
       "Checkpoints"},
      {"ignore_unexpected", "", "",
       "Skip, and list, checkpoint tensors the norm stack has no parameter "
       "for (embeddings, projections, vision tower, ...). Default: on when a "
       "checkpoint is a directory or an index.json (a full model), off for a "
       "single file.",
       "Checkpoints"},
      {"check_finite", "", "true",
       "Refuse checkpoints whose norm weights hold NaN or infinity.",
       "Checkpoints"},
      {"save_checkpoint", "PATH", "",
       "Also write the synthetic checkpoint to PATH and keep it, replacing "
       "a file there (only without --checkpoint; never over or beside the "
       "--update_checkpoint's files).",
       "Checkpoints"},
      // Run.
      {"cycles", "N", "5",
       "RL-style cycles, 1 to 100000: one weight update, then "
       "--replays_per_cycle replays.",
       "Run"},
      {"replays_per_cycle", "N", "4",
       "Graph replays per cycle, 1 to 10000, each at a random batch size "
       "(at most 1000000 replays in all).",
       "Run"},
      {"buckets", "LIST", "1,2,4,8,16,32,64",
       "Batch-size buckets to capture, comma separated, distinct, each 1 to "
       "4096; a batch runs in the smallest bucket that holds it, padded.",
       "Run"},
      {"policy", "NAME", "refuse",
       "What a replay does when a buffer moved or went stale: refuse (launch "
       "nothing; name every tensor; 'fail' is an old name for it), recapture, "
       "rebind (patch node arguments in place), or unchecked (no checks, as "
       "today's engines). With --inject and no --policy, all four.",
       "Run"},
      {"inject", "NAME", "none",
       "none, or legacy-loader: build the zero-centred norms with SGLang's "
       "pre-fix loader (`self.gemma_weight = param.data + 1.0`) and run the "
       "scenario under every policy.",
       "Run"},
      {"seed", "N", "1",
       "Seed for weights, inputs and batch sizes (0 to 2^64-1).", "Run"},
      {"device", "NAME", "cpu",
       "Where the stack runs: cpu, or cuda / cuda:N (real CUDA graphs; needs "
       "a binary built with --config=cuda, e.g. from the GPU bundle).",
       "Run"},
      {"max_memory", "SIZE", "auto",
       "Memory the run may use, e.g. 512M or 8G; auto: what this machine can "
       "hold now (the least of MemAvailable, the cgroup's limit and ulimit "
       "-v). A run estimated to need more is refused before it allocates.",
       "Run"},
      // Output.
      {"json", "", "false",
       "Print one JSON object (and nothing else) on stdout, also on error; "
       "progress goes to stderr.",
       "Output"},
      {"help", "", "", "Show this help (also -h) and exit 0.", "Output"},
      {"version", "", "", "Show how this binary was built and exit 0.",
       "Output"},
  };
  return *defs;
}

const FlagDef* FindFlag(absl::string_view name) {
  for (const FlagDef& d : FlagDefs()) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

// Levenshtein distance, for "did you mean".
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min(
          {row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

struct CommandLine {
  std::map<std::string, std::string> values;  // explicitly given flags
  bool help = false;
  bool version = false;
  bool json = false;  // known as early as possible, for errors

  bool Has(absl::string_view name) const {
    return values.count(std::string(name)) > 0;
  }
  std::string Get(absl::string_view name) const {
    auto it = values.find(std::string(name));
    if (it != values.end()) return it->second;
    const FlagDef* d = FindFlag(name);
    return d != nullptr ? d->def : "";
  }
};

std::optional<bool> ParseBool(absl::string_view v) {
  const std::string s = absl::AsciiStrToLower(v);
  if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  return std::nullopt;
}

// Whether the command line asks for JSON output: a first pass, so that even a
// flag error is reported as JSON. Every spelling the flag parser takes
// (--json, -json, --json=V for any V ParseBool reads, --nojson); the last
// one wins. Only flags: a word without a dash is another flag's value
// (--model_dir json).
bool JsonRequested(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (a == "--") break;
    if (!absl::ConsumePrefix(&a, "--") && !absl::ConsumePrefix(&a, "-")) {
      continue;
    }
    if (a == "json") json = true;
    if (a == "nojson") json = false;
    if (absl::ConsumePrefix(&a, "json=")) {
      if (std::optional<bool> b = ParseBool(a)) json = *b;
    }
  }
  return json;
}

absl::StatusOr<CommandLine> ParseCommandLine(int argc, char** argv) {
  CommandLine cl;
  cl.json = JsonRequested(argc, argv);
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      if (i + 1 < argc) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unexpected argument '", argv[i + 1],
            "': normgraph takes only flags (--name=value); see --help"));
      }
      break;
    }
    if (arg == "-h" || arg == "--help" || arg == "-help" ||
        arg == "--helpfull" || arg == "-?") {
      cl.help = true;
      continue;
    }
    if (arg == "--version" || arg == "-version") {
      cl.version = true;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected argument '", arg,
          "': normgraph takes only flags (--name=value); see --help"));
    }
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
    std::string name(body), value;
    bool has_value = false;
    const size_t eq = body.find('=');
    if (eq != absl::string_view::npos) {
      name = std::string(body.substr(0, eq));
      value = std::string(body.substr(eq + 1));
      has_value = true;
    }
    const FlagDef* def = FindFlag(name);
    bool negated = false;
    if (def == nullptr && absl::StartsWith(name, "no")) {
      const FlagDef* positive = FindFlag(name.substr(2));
      if (positive != nullptr && positive->value[0] == '\0') {
        def = positive;
        negated = true;
      }
    }
    if (def == nullptr || name == "help" || name == "version") {
      std::string best;
      size_t best_distance = 4;
      for (const FlagDef& d : FlagDefs()) {
        const size_t dist = EditDistance(name, d.name);
        if (dist < best_distance) {
          best_distance = dist;
          best = d.name;
        }
      }
      if (def != nullptr) {  // --help=x, --version=x
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes no value"));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag --", name,
          best.empty() ? "" : absl::StrCat(" (did you mean --", best, "?)"),
          "; --help lists the flags"));
    }
    const bool is_bool = def->value[0] == '\0';
    if (is_bool) {
      if (negated) {
        if (has_value) {
          return absl::InvalidArgumentError(
              absl::StrCat("--", name, " takes no value"));
        }
        value = "false";
      } else if (!has_value) {
        value = "true";
      } else {
        std::optional<bool> b = ParseBool(value);
        if (!b) {
          return absl::InvalidArgumentError(absl::StrCat(
              "--", def->name, "=", value, ": expected true or false (or --",
              def->name, " / --no", def->name, ")"));
        }
        value = *b ? "true" : "false";
      }
    } else if (!has_value) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", def->name, " needs a value: --", def->name, "=", def->value));
      }
      value = argv[++i];
    }
    cl.values[def->name] = value;
  }
  return cl;
}

std::string HelpText() {
  std::string out =
      "normgraph: checks that CUDA-graph replay of an LLM norm stack equals "
      "eager execution, bit for bit, through RL-style weight updates.\n"
      "\n"
      "usage: bazel run -c opt //tools:normgraph -- [flags]\n"
      "       normgraph [flags]\n"
      "\n"
      "examples:\n"
      "  normgraph                                   Qwen3.5-shaped stack "
      "(32 layers, hidden 4096), synthetic weights\n"
      "  normgraph --inject=legacy-loader --cycles=2 SGLang's pre-fix loader "
      "under every policy\n"
      "  normgraph --model=gemma3 --layers=4 --json  a small Gemma3 stack, "
      "JSON on stdout\n"
      "  normgraph --model_dir=~/models/Qwen3.5-2B   the norms of a Hugging "
      "Face model (config.json + checkpoint)\n"
      "  normgraph --checkpoint=a.safetensors --update_checkpoint=b/  swap "
      "A -> B -> A through real files\n"
      "\n"
      "Relative paths are resolved against the directory `bazel run` was "
      "started in (BUILD_WORKING_DIRECTORY), else the current directory.\n";
  std::string group;
  for (const FlagDef& d : FlagDefs()) {
    if (group != d.group) {
      group = d.group;
      absl::StrAppend(&out, "\n", group, ":\n");
    }
    std::string head = absl::StrCat("  --", d.name);
    if (d.value[0] != '\0') absl::StrAppend(&head, "=", d.value);
    std::string help = d.help;
    if (d.def[0] != '\0' && std::string(d.name) != "layers" &&
        std::string(d.name) != "hidden") {
      absl::StrAppend(&help, " (default: ",
                      std::string(d.def).empty() ? "empty" : d.def, ")");
    }
    // Wrap the help at 100 columns, indented under the flag.
    std::vector<std::string> lines;
    std::string line;
    for (absl::string_view word : absl::StrSplit(help, ' ')) {
      if (!line.empty() && line.size() + 1 + word.size() > 74) {
        lines.push_back(line);
        line.clear();
      }
      absl::StrAppend(&line, line.empty() ? "" : " ", word);
    }
    if (!line.empty()) lines.push_back(line);
    if (head.size() < 26) {
      absl::StrAppend(&out, absl::StrFormat("%-26s", head), lines[0], "\n");
      lines.erase(lines.begin());
    } else {
      absl::StrAppend(&out, head, "\n");
    }
    for (const std::string& l : lines) {
      absl::StrAppend(&out, std::string(26, ' '), l, "\n");
    }
  }
  absl::StrAppend(
      &out,
      "\nexit codes:\n"
      "  0  every replay came out as expected (equal to eager; with --inject, "
      "the bug shown, refused or repaired)\n"
      "  1  the check found a problem: a replay differed from eager or was "
      "refused without an injected fault, or\n"
      "     the injected bug was not shown, refused or repaired as expected\n"
      "  2  bad input: a flag, a path, config.json, a checkpoint, the "
      "device, or a run too large for this machine\n"
      "  3  internal error\n"
      "\nREADME.md describes the output, the JSON fields and the tensor "
      "names a checkpoint must have.\n");
  return out;
}

std::string VersionText() {
#if defined(__OPTIMIZE__) && defined(NDEBUG)
  const char* mode = "optimized (-c opt)";
#elif defined(__OPTIMIZE__)
  const char* mode = "optimized, assertions on";
#else
  const char* mode = "unoptimized (fastbuild or dbg), assertions on";
#endif
#if defined(__clang__)
  const std::string compiler = absl::StrCat("clang ", __clang_version__);
#elif defined(__GNUC__)
  const std::string compiler = absl::StrCat("g++ ", __VERSION__);
#else
  const std::string compiler = "an unknown compiler";
#endif
  return absl::StrCat(
      "normgraph: ", mode, " build, ", compiler, "; backends: cpu",
      BackendLinked(DeviceType::kCuda) ? ", cuda" : "",
      "; safetensors checkpoints of qwen3_5 and gemma3 norm stacks\n");
}

// ---------------------------------------------------------------------------
// The resolved configuration.

struct Setup {
  std::string model;  // "qwen3_5" or "gemma3"
  Qwen35NormStackConfig qwen;
  Gemma3NormStackConfig gemma;
  DType dtype = DType::kBF16;
  std::optional<HfModelConfig> hf;  // with --model_dir

  std::string checkpoint_given, update_given;  // as given
  std::optional<CheckpointLocation> checkpoint, update;
  CheckpointOptions checkpoint_options, update_options;
  std::string save_checkpoint;
  std::string resolved_against;  // what relative paths were resolved against

  int cycles = 0;
  int replays_per_cycle = 0;
  std::vector<int64_t> buckets;
  uint64_t seed = 0;
  bool json = false;
  bool legacy = false;
  std::vector<ReplayPolicy> policies;
  std::string device_name;
  DeviceRuntime* runtime = nullptr;

  uint64_t max_memory = 0;
  std::string max_memory_source;
  // batches[cycle][replay]: drawn once, so the memory they need is known.
  std::vector<std::vector<int64_t>> batches;
};

std::ostream& Progress(const Setup& s) {
  return s.json ? std::cerr : std::cout;
}

// Policy names as a person reads them: "refuse" says what it does ("fail" read
// as a verdict); the library's "fail" stays accepted as an alias.
absl::string_view PolicyName(ReplayPolicy p) {
  return p == ReplayPolicy::kFail ? "refuse" : ReplayPolicyName(p);
}

std::optional<ReplayPolicy> ParsePolicy(absl::string_view name) {
  if (name == "refuse") return ReplayPolicy::kFail;
  return ParseReplayPolicy(name);  // the library's names, "fail" included
}

absl::Status FlagError(absl::string_view name, absl::string_view value,
                       absl::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, "=", value, ": ", expected));
}

absl::StatusOr<int64_t> IntFlag(const CommandLine& cl, absl::string_view name,
                                int64_t lo, int64_t hi, int64_t def) {
  if (!cl.Has(name)) return def;
  const std::string v = cl.Get(name);
  int64_t out = 0;
  if (!absl::SimpleAtoi(v, &out) || out < lo || out > hi) {
    return FlagError(name, v,
                     absl::StrCat("expected an integer from ", lo, " to ", hi));
  }
  return out;
}

absl::StatusOr<uint64_t> ParseSize(absl::string_view text) {
  const std::string upper =
      absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  absl::string_view v = upper;
  absl::ConsumeSuffix(&v, "B");
  absl::ConsumeSuffix(&v, "I");
  double scale = 1;
  if (!v.empty()) {
    switch (v.back()) {
      case 'K':
        scale = 1024.0;
        break;
      case 'M':
        scale = 1024.0 * 1024;
        break;
      case 'G':
        scale = 1024.0 * 1024 * 1024;
        break;
      case 'T':
        scale = 1024.0 * 1024 * 1024 * 1024;
        break;
      default:
        break;
    }
    if (scale != 1) v.remove_suffix(1);
  }
  double number = 0;
  if (v.empty() || !absl::SimpleAtod(v, &number) || !std::isfinite(number) ||
      number <= 0 || number * scale > 1e18) {
    return absl::InvalidArgumentError("not a size");
  }
  return static_cast<uint64_t>(number * scale);
}

// Relative paths: against BUILD_WORKING_DIRECTORY (bazel run), else the
// current directory.
std::string ResolvePath(const std::string& path, std::string* against) {
  if (path.empty() || path[0] == '/') return path;
  std::string p = path;
  if (absl::StartsWith(p, "~/")) {
    const char* home = std::getenv("HOME");
    if (home != nullptr && *home != '\0') {
      *against = absl::StrCat("$HOME (", home, ")");
      return absl::StrCat(home, p.substr(1));
    }
  }
  const char* bwd = std::getenv("BUILD_WORKING_DIRECTORY");
  std::string base;
  if (bwd != nullptr && *bwd != '\0') {
    base = bwd;
    *against = absl::StrCat("BUILD_WORKING_DIRECTORY (", base,
                            "), the directory bazel run was started in");
  } else {
    char buf[4096];
    if (::getcwd(buf, sizeof(buf)) != nullptr) base = buf;
    *against = absl::StrCat("the current directory (", base, ")");
  }
  if (base.empty()) return path;
  absl::string_view rest = p;
  while (absl::ConsumePrefix(&rest, "./")) {
  }
  return absl::StrCat(base, "/", rest);
}

// An error about a path flag, with where relative paths were resolved.
absl::Status PathError(absl::string_view flag, const std::string& given,
                       const std::string& resolved, const std::string& against,
                       const absl::Status& s) {
  std::string where;
  if (given != resolved && !given.empty() && given[0] != '/') {
    where = absl::StrCat(" (resolved to ", resolved, " against ", against, ")");
  }
  return absl::Status(
      s.code(), absl::StrCat("--", flag, "=", given, where, ": ", s.message()));
}

// The memory this machine can give the run now, and where that figure comes
// from.
struct Available {
  uint64_t bytes = UINT64_MAX;
  std::string source;
  uint64_t address_space = UINT64_MAX;  // ulimit -v left, if set
};

uint64_t ReadProcKb(const char* file, const char* key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, key)) {
      std::vector<std::string> parts =
          absl::StrSplit(line, ' ', absl::SkipEmpty());
      uint64_t kb = 0;
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) {
        return kb * 1024;
      }
    }
  }
  return 0;
}

uint64_t ReadNumberFile(const std::string& path) {
  std::ifstream in(path);
  std::string v;
  if (!(in >> v)) return 0;
  uint64_t n = 0;
  return absl::SimpleAtoi(v, &n) ? n : 0;
}

Available MachineAvailable() {
  Available a;
  const uint64_t mem = ReadProcKb("/proc/meminfo", "MemAvailable:");
  if (mem > 0) {
    a.bytes = mem;
    a.source = "MemAvailable in /proc/meminfo";
  }
  // cgroup v2: the limit of our cgroup minus what it uses.
  std::ifstream cg("/proc/self/cgroup");
  std::string line;
  while (std::getline(cg, line)) {
    if (!absl::StartsWith(line, "0::")) continue;
    const std::string dir = absl::StrCat("/sys/fs/cgroup", line.substr(3));
    const uint64_t max = ReadNumberFile(dir + "/memory.max");
    const uint64_t cur = ReadNumberFile(dir + "/memory.current");
    if (max > 0 && max > cur && max - cur < a.bytes) {
      a.bytes = max - cur;
      a.source = absl::StrCat("the cgroup's memory.max (", FormatBytes(max),
                              ") less its use");
    }
  }
  struct rlimit rl;
  if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    const uint64_t used = ReadProcKb("/proc/self/status", "VmSize:");
    const uint64_t left = rl.rlim_cur > used ? rl.rlim_cur - used : 0;
    a.address_space = left;
    if (left < a.bytes) {
      a.bytes = left;
      a.source = absl::StrCat("ulimit -v (", FormatBytes(rl.rlim_cur),
                              ") less the address space in use");
    }
  }
  if (a.source.empty()) a.source = "no limit found";
  return a;
}

uint64_t PeakRss() { return ReadProcKb("/proc/self/status", "VmHWM:"); }

// ---------------------------------------------------------------------------
// The memory a run needs, from the sizes alone (nothing is allocated).

struct MemoryEstimate {
  uint64_t parameters = 0;    // weights and derived buffers (device)
  uint64_t step_buffers = 0;  // static buffers + one io/eager pair (device)
  uint64_t graphs = 0;        // captured nodes, identity snapshots (host)
  uint64_t host = 0;          // checkpoint copies, update weights, backups
  uint64_t base = 0;          // the process itself
  uint64_t device_total() const { return parameters + step_buffers; }
  uint64_t host_total() const { return graphs + host + base; }
  uint64_t total() const { return device_total() + host_total(); }
};

uint64_t Round64(uint64_t b) { return (b + 63) / 64 * 64; }

struct StackShape {
  bool qwen = true;
  int64_t layers = 0, hidden = 0, heads = 0, kv_heads = 0, head_dim = 0,
          linear_heads = 0, linear_dim = 0;
  std::vector<bool> full;  // per layer (qwen): full attention
  size_t dsize = 2;
};

StackShape ShapeOf(const Setup& s) {
  StackShape sh;
  sh.qwen = s.model == "qwen3_5";
  sh.dsize = DTypeSize(s.dtype);
  if (sh.qwen) {
    const Qwen35NormStackConfig& c = s.qwen;
    sh.layers = c.num_hidden_layers;
    sh.hidden = c.hidden_size;
    sh.heads = c.num_attention_heads;
    sh.kv_heads = c.num_key_value_heads;
    sh.head_dim = c.head_dim;
    sh.linear_heads = c.linear_num_value_heads;
    sh.linear_dim = c.linear_value_head_dim;
    for (int64_t i = 0; i < sh.layers; ++i) {
      sh.full.push_back(c.layer_types.empty()
                            ? (i + 1) % 4 == 0
                            : c.layer_types[i] ==
                                  Qwen35LayerType::kFullAttention);
    }
  } else {
    const Gemma3NormStackConfig& c = s.gemma;
    sh.layers = c.num_hidden_layers;
    sh.hidden = c.hidden_size;
    sh.heads = c.num_attention_heads;
    sh.kv_heads = c.num_key_value_heads;
    sh.head_dim = c.head_dim;
  }
  return sh;
}

// Parameter bytes: weights (dsize each, rounded) and, for zero-centred norms,
// the f32 `1 + w` buffer. `weights_only`: the weights alone (a host copy).
uint64_t ParamBytes(const StackShape& sh, bool weights_only) {
  uint64_t total = 0;
  auto zc = [&](int64_t n) {
    total += Round64(n * sh.dsize) + (weights_only ? 0 : Round64(n * 4));
  };
  auto plain = [&](int64_t n) { total += Round64(n * sh.dsize); };
  for (int64_t i = 0; i < sh.layers; ++i) {
    if (sh.qwen) {
      zc(sh.hidden);
      zc(sh.hidden);
      if (sh.full[i]) {
        zc(sh.head_dim);
        zc(sh.head_dim);
      } else {
        plain(sh.linear_dim);
      }
    } else {
      for (int k = 0; k < 4; ++k) zc(sh.hidden);
      zc(sh.head_dim);
      zc(sh.head_dim);
    }
  }
  zc(sh.hidden);
  return total;
}

// Bytes of one step's buffers for `batch` rows (CommonStepSpecs + the stack's
// own; see layers/*_norm_stack.cc).
uint64_t StepBytes(const StackShape& sh, int64_t batch) {
  const uint64_t d = sh.dsize;
  const uint64_t b = static_cast<uint64_t>(batch);
  uint64_t total = 5 * Round64(b * sh.hidden * d) +
                   Round64(b * sh.heads * sh.head_dim * d) +
                   Round64(b * sh.kv_heads * sh.head_dim * d);
  const uint64_t qk = Round64(b * sh.heads * sh.head_dim * d) +
                      Round64(b * sh.kv_heads * sh.head_dim * d);
  if (sh.qwen) {
    const uint64_t linear = Round64(b * sh.linear_heads * sh.linear_dim * d);
    total += 2 * linear;
    for (int64_t i = 0; i < sh.layers; ++i) total += sh.full[i] ? qk : linear;
  } else {
    total += sh.layers * qk;
  }
  return total;
}

int64_t NodesPerStep(const StackShape& sh) {
  if (!sh.qwen) return 2 + 6 * sh.layers;
  int64_t n = 2;
  for (int64_t i = 0; i < sh.layers; ++i) n += sh.full[i] ? 4 : 3;
  return n;
}

// Host bytes per captured node: the launch record, the identity snapshot of
// its arguments and the read-back inventory (measured: see README.md).
constexpr uint64_t kBytesPerNode = 6 * 1024;

MemoryEstimate EstimateMemory(const Setup& s) {
  const StackShape sh = ShapeOf(s);
  MemoryEstimate m;
  // Parameters: the model, and a second set while a legacy loader's rebound
  // buffers and the old ones coexist.
  m.parameters = 2 * ParamBytes(sh, false);
  for (int64_t b : s.buckets) m.step_buffers += StepBytes(sh, b);
  m.step_buffers += 2 * StepBytes(sh, s.buckets.back()) + 2 * 64 * 64;
  // Graphs: every bucket's nodes; a recapture builds the new graph before the
  // old one goes.
  m.graphs = 2 * kBytesPerNode * static_cast<uint64_t>(NodesPerStep(sh)) *
             s.buckets.size();
  // Host weights: the synthetic checkpoint (generated, serialized), the
  // prepared checkpoints, an update's generated weights, the loader's backups.
  const uint64_t w = ParamBytes(sh, true);
  m.host = w * (s.checkpoint ? 1 : 3) + w * (s.update ? 1 : 0) + 2 * w;
  m.base = 48ull << 20;
  return m;
}

// The device's total memory, if its description says ("139.8 GiB").
std::optional<uint64_t> DeviceMemory(const std::string& description) {
  const size_t gib = description.rfind(" GiB");
  if (gib == std::string::npos) return std::nullopt;
  size_t start = gib;
  while (start > 0 && (absl::ascii_isdigit(description[start - 1]) ||
                       description[start - 1] == '.')) {
    --start;
  }
  double v = 0;
  if (!absl::SimpleAtod(description.substr(start, gib - start), &v)) {
    return std::nullopt;
  }
  return static_cast<uint64_t>(v * 1024 * 1024 * 1024);
}

// ---------------------------------------------------------------------------
// Validation of the whole command line, before anything is allocated.

absl::Status ValidateSizes(Setup& s, const CommandLine& cl) {
  const bool qwen = s.model == "qwen3_5";
  const int64_t default_layers =
      qwen ? Qwen35NormStackConfig().num_hidden_layers
           : Gemma3NormStackConfig().num_hidden_layers;
  const int64_t default_hidden = qwen ? Qwen35NormStackConfig().hidden_size
                                      : Gemma3NormStackConfig().hidden_size;
  NG_ASSIGN_OR_RETURN(int64_t layers, IntFlag(cl, "layers", 1, kMaxConfigLayers,
                                              default_layers));
  NG_ASSIGN_OR_RETURN(int64_t hidden, IntFlag(cl, "hidden", 1, kMaxConfigHidden,
                                              default_hidden));
  s.qwen.num_hidden_layers = layers;
  s.qwen.hidden_size = hidden;
  s.gemma.num_hidden_layers = layers;
  s.gemma.hidden_size = hidden;
  return absl::OkStatus();
}

absl::StatusOr<DType> ParseDTypeFlag(const std::string& v) {
  if (v == "bf16") return DType::kBF16;
  if (v == "f16") return DType::kF16;
  if (v == "f32") return DType::kF32;
  return FlagError("dtype", v, "expected bf16, f16 or f32");
}

// Resolves a checkpoint path flag into a location.
absl::StatusOr<CheckpointLocation> LocateFlag(absl::string_view flag,
                                              const std::string& given,
                                              Setup& s) {
  std::string against;
  const std::string resolved = ResolvePath(given, &against);
  if (!against.empty()) s.resolved_against = against;
  absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(resolved);
  if (!loc.ok()) {
    return PathError(flag, given, resolved, against, loc.status());
  }
  return loc;
}

absl::Status ValidateSetup(const CommandLine& cl, Setup& s) {
  Stage() = "validating flags";
  s.json = cl.json;
  // The model: --model_dir's config.json, or --model and the size flags.
  const std::string model_dir_given = cl.Get("model_dir");
  std::optional<CheckpointLocation> model_dir_location;
  if (!model_dir_given.empty()) {
    for (const char* f : {"model", "layers", "hidden"}) {
      if (cl.Has(f)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", f,
                         " conflicts with --model_dir: the model and its sizes "
                         "come from its config.json"));
      }
    }
    std::string against;
    const std::string dir = ResolvePath(model_dir_given, &against);
    if (!against.empty()) s.resolved_against = against;
    // A directory first: LocateCheckpoint would take a file for a checkpoint
    // and speak of one.
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      const bool exists = ::stat(dir.c_str(), &st) == 0;
      return PathError(
          "model_dir", model_dir_given, dir, against,
          exists ? absl::InvalidArgumentError(
                       "not a directory (a model directory holds config.json "
                       "and the checkpoint)")
                 : absl::NotFoundError("no such directory"));
    }
    // With --checkpoint the weights come from there: the directory needs
    // only its config.json.
    std::string config_json = absl::StrCat(dir, "/config.json");
    if (cl.Get("checkpoint").empty()) {
      absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
      if (!loc.ok()) {
        return PathError("model_dir", model_dir_given, dir, against,
                         loc.status());
      }
      if (!loc->from_directory) {
        return PathError("model_dir", model_dir_given, dir, against,
                         absl::InvalidArgumentError(
                             "not a directory (a model directory holds "
                             "config.json and the checkpoint)"));
      }
      config_json = loc->config_json;
      model_dir_location = *loc;
    } else if (::stat(config_json.c_str(), &st) != 0) {
      config_json.clear();
    }
    if (config_json.empty()) {
      return PathError(
          "model_dir", model_dir_given, dir, against,
          absl::NotFoundError(absl::StrCat(
              "no config.json (looked at ", dir,
              "/config.json); --checkpoint loads the weights alone")));
    }
    absl::StatusOr<HfModelConfig> hf = ReadHfConfig(config_json);
    if (!hf.ok()) return hf.status();
    s.hf = *hf;
    s.model = std::string(hf->family_name());
    s.qwen = hf->qwen;
    s.gemma = hf->gemma;
  } else {
    s.model = cl.Get("model");
    if (s.model != "qwen3_5" && s.model != "gemma3") {
      return FlagError("model", s.model, "expected qwen3_5 or gemma3");
    }
    NG_RETURN_IF_ERROR(ValidateSizes(s, cl));
  }
  if (cl.Has("dtype") || !s.hf || !s.hf->dtype) {
    NG_ASSIGN_OR_RETURN(s.dtype, ParseDTypeFlag(cl.Get("dtype")));
  } else {
    s.dtype = *s.hf->dtype;
  }

  // Run flags.
  NG_ASSIGN_OR_RETURN(int64_t cycles, IntFlag(cl, "cycles", 1, kMaxCycles, 5));
  NG_ASSIGN_OR_RETURN(int64_t replays, IntFlag(cl, "replays_per_cycle", 1,
                                               kMaxReplaysPerCycle, 4));
  if (cycles * replays > kMaxReplays) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--cycles=", cycles, " x --replays_per_cycle=", replays, " is ",
        cycles * replays, " replays: at most ", kMaxReplays,
        " (each replay's batch is drawn and reported)"));
  }
  s.cycles = static_cast<int>(cycles);
  s.replays_per_cycle = static_cast<int>(replays);
  const std::string buckets = cl.Get("buckets");
  std::set<int64_t> seen;
  for (absl::string_view b : absl::StrSplit(buckets, ',')) {
    b = absl::StripAsciiWhitespace(b);
    int64_t v = 0;
    if (!absl::SimpleAtoi(b, &v) || v < 1 || v > kMaxBucket) {
      return FlagError("buckets", buckets,
                       absl::StrCat("'", b,
                                    "' is not a bucket: expected batch sizes "
                                    "from 1 to ",
                                    kMaxBucket, ", comma separated"));
    }
    if (!seen.insert(v).second) {
      return FlagError("buckets", buckets,
                       absl::StrCat("bucket ", v, " is given twice"));
    }
  }
  if (seen.size() > static_cast<size_t>(kMaxBuckets)) {
    return FlagError("buckets", buckets,
                     absl::StrCat("at most ", kMaxBuckets, " buckets"));
  }
  s.buckets.assign(seen.begin(), seen.end());

  const std::string policy = cl.Get("policy");
  std::optional<ReplayPolicy> parsed = ParsePolicy(policy);
  if (!parsed) {
    return FlagError("policy", policy,
                     "expected refuse (alias: fail), recapture, rebind or "
                     "unchecked");
  }
  const std::string inject = cl.Get("inject");
  if (inject == "none") {
    s.policies = {*parsed};
  } else if (inject == "legacy-loader") {
    s.legacy = true;
    if (cl.Has("policy")) {
      s.policies = {*parsed};
    } else {
      s.policies = {ReplayPolicy::kUnchecked, ReplayPolicy::kFail,
                    ReplayPolicy::kRecapture, ReplayPolicy::kRebind};
    }
  } else {
    return FlagError("inject", inject, "expected none or legacy-loader");
  }
  const std::string seed = cl.Get("seed");
  if (!absl::SimpleAtoi(seed, &s.seed)) {
    return FlagError("seed", seed,
                     "expected an integer from 0 to 18446744073709551615");
  }

  // Checkpoints.
  const std::string prefix = cl.Get("prefix");
  for (char c : prefix) {
    if (absl::ascii_isspace(c) || c == '/') {
      return FlagError("prefix", prefix,
                       "expected 'auto' or a dotted name prefix such as "
                       "model.language_model.");
    }
  }
  s.checkpoint_options.prefix = prefix;
  s.checkpoint_options.check_finite = cl.Get("check_finite") == "true";
  s.checkpoint_given = cl.Get("checkpoint");
  if (cl.Has("prefix") && s.checkpoint_given.empty() && !model_dir_location &&
      cl.Get("update_checkpoint").empty()) {
    return absl::InvalidArgumentError(
        "--prefix names where a checkpoint keeps the text model; it needs "
        "--checkpoint, --model_dir or --update_checkpoint (the synthetic "
        "checkpoint is written under model.)");
  }
  if (s.checkpoint_given.empty() && model_dir_location) {
    s.checkpoint = model_dir_location;
    s.checkpoint_given = model_dir_given;
  } else if (!s.checkpoint_given.empty()) {
    NG_ASSIGN_OR_RETURN(CheckpointLocation loc,
                        LocateFlag("checkpoint", s.checkpoint_given, s));
    s.checkpoint = loc;
  }
  s.update_given = cl.Get("update_checkpoint");
  if (!s.update_given.empty()) {
    NG_ASSIGN_OR_RETURN(CheckpointLocation loc,
                        LocateFlag("update_checkpoint", s.update_given, s));
    s.update = loc;
  }
  s.update_options = s.checkpoint_options;
  // --prefix names where the given checkpoints keep the text model; the
  // synthetic one (no --checkpoint / --model_dir) is written under model.
  if (!s.checkpoint) s.checkpoint_options.prefix = std::string(kAutoPrefix);
  const bool full_model = [](const std::optional<CheckpointLocation>& l) {
    return l &&
           (l->from_directory || l->kind == CheckpointLocation::Kind::kSharded);
  }(s.checkpoint);
  const bool full_update =
      s.update && (s.update->from_directory ||
                   s.update->kind == CheckpointLocation::Kind::kSharded);
  if (cl.Has("ignore_unexpected")) {
    const bool v = cl.Get("ignore_unexpected") == "true";
    s.checkpoint_options.ignore_unexpected = v;
    s.update_options.ignore_unexpected = v;
  } else {
    s.checkpoint_options.ignore_unexpected = full_model;
    s.update_options.ignore_unexpected = full_update;
  }
  s.save_checkpoint = cl.Get("save_checkpoint");
  if (!s.save_checkpoint.empty()) {
    if (s.checkpoint) {
      return absl::InvalidArgumentError(
          "--save_checkpoint writes the synthetic checkpoint, which is only "
          "made without --checkpoint / --model_dir");
    }
    std::string against;
    const std::string resolved = ResolvePath(s.save_checkpoint, &against);
    if (!against.empty()) s.resolved_against = against;
    s.save_checkpoint = resolved;
    // The folder it goes into ("." for a bare name).
    const size_t slash = resolved.find_last_of('/');
    const std::string folder =
        slash == std::string::npos ? "." : resolved.substr(0, slash + 1);
    // Never over a checkpoint this run reads (a shard or the index), nor
    // into its directory (a new model.safetensors there would change what
    // the directory loads).
    if (s.update) {
      auto real = [](const std::string& path) {
        char* r = ::realpath(path.c_str(), nullptr);
        std::string out = r != nullptr ? r : "";
        std::free(r);
        return out;
      };
      const std::string saved = real(resolved);
      std::vector<std::string> read = s.update->files;
      read.push_back(s.update->path);
      for (const std::string& file : read) {
        if (!saved.empty() && saved == real(file)) {
          return absl::InvalidArgumentError(
              absl::StrCat("--save_checkpoint=", resolved,
                           " is a file of the --update_checkpoint (", file,
                           "): saving would overwrite it"));
        }
      }
      const std::string saved_dir = real(folder);
      // (Given as a directory, a file or an index: a file saved beside an
      // index or a single file changes what that directory loads too.)
      if (!saved_dir.empty() && saved_dir == real(s.update->directory)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--save_checkpoint=", resolved,
            " is in the --update_checkpoint directory ", s.update->directory,
            ": a checkpoint saved there would change what it loads"));
      }
    }
    // A .json path would be read back as a sharded checkpoint's index.
    if (absl::EndsWith(resolved, ".json")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--save_checkpoint=", resolved,
          ": a .json path is read as a sharded checkpoint's index; give a "
          ".safetensors file's path"));
    }
    // Where it goes must exist and be a file's place: said now, before
    // anything is allocated (an existing file is replaced, atomically).
    struct stat st;
    if (::stat(resolved.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--save_checkpoint=", resolved,
                       " is a directory; give the path of a file"));
    }
    if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--save_checkpoint=", resolved, ": its folder ", folder,
                       " does not exist"));
    }
  }

  // The device.
  s.device_name = cl.Get("device");
  absl::StatusOr<Device> device = ParseDevice(s.device_name);
  if (!device.ok()) {
    return FlagError("device", s.device_name,
                     "expected cpu, cuda or cuda:N (N >= 0)");
  }
  absl::StatusOr<DeviceRuntime*> runtime = GetRuntime(*device);
  if (!runtime.ok()) {
    return absl::Status(runtime.status().code(),
                        absl::StrCat("--device=", s.device_name, ": ",
                                     runtime.status().message()));
  }
  s.runtime = *runtime;

  // The batch schedule: one batch size per replay.
  std::mt19937_64 rng(s.seed * 7919 + 17);
  std::uniform_int_distribution<int64_t> batch_dist(1, s.buckets.back());
  s.batches.assign(s.cycles, std::vector<int64_t>(s.replays_per_cycle));
  for (auto& cycle : s.batches) {
    for (int64_t& b : cycle) b = batch_dist(rng);
  }

  // Memory.
  const std::string max_memory = cl.Get("max_memory");
  if (max_memory == "auto") {
    Available a = MachineAvailable();
    s.max_memory = a.bytes;
    s.max_memory_source = a.source;
  } else {
    absl::StatusOr<uint64_t> size = ParseSize(max_memory);
    if (!size.ok() || *size < static_cast<uint64_t>(kMinMaxMemory)) {
      return FlagError("max_memory", max_memory,
                       "expected auto or a size of at least 16M (e.g. 512M, "
                       "8G, 1.5T)");
    }
    s.max_memory = *size;
    s.max_memory_source = "--max_memory";
  }
  return absl::OkStatus();
}

absl::Status CheckMemory(const Setup& s, const MemoryEstimate& m) {
  const bool cpu = s.runtime->device() == Device::Cpu();
  const uint64_t host = cpu ? m.total() : m.host_total();
  auto advice = [&]() {
    return absl::StrCat(
        "; use fewer --layers, a smaller --hidden, fewer or smaller "
        "--buckets (now ",
        absl::StrJoin(s.buckets, ","), "), or --max_memory=SIZE to allow more");
  };
  auto breakdown = [&]() {
    return absl::StrCat("parameters ", FormatBytes(m.parameters),
                        ", step buffers ", FormatBytes(m.step_buffers),
                        ", graphs ", FormatBytes(m.graphs),
                        ", host copies of the weights ", FormatBytes(m.host),
                        ", the process itself ", FormatBytes(m.base));
  };
  if (host > s.max_memory) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this run needs about ", FormatBytes(host), " (", breakdown(), ") but ",
        FormatBytes(s.max_memory), " is available (", s.max_memory_source,
        "); nothing was allocated", advice()));
  }
  if (!cpu) {
    std::optional<uint64_t> device = DeviceMemory(s.runtime->Describe());
    if (device && m.device_total() > *device) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "this run needs about ", FormatBytes(m.device_total()), " on ",
          s.runtime->Describe(), " (", breakdown(),
          "), more than the device has; nothing was allocated", advice()));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Temporary files: unique names, created atomically (mkstemps), removed when
// the owner goes.

class TempFile {
 public:
  static absl::StatusOr<std::unique_ptr<TempFile>> Create(
      absl::string_view stem, absl::string_view suffix) {
    const char* tmpdir = std::getenv("TMPDIR");
    const std::string dir =
        tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
    std::string path = absl::StrCat(dir, "/", stem, "-XXXXXX", suffix);
    std::vector<char> buf(path.begin(), path.end());
    buf.push_back('\0');
    const int fd = ::mkstemps(buf.data(), static_cast<int>(suffix.size()));
    if (fd < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot create a temporary file in ", dir,
                       tmpdir != nullptr && *tmpdir != '\0' ? " ($TMPDIR)" : "",
                       ": ", std::strerror(errno)));
    }
    return std::unique_ptr<TempFile>(new TempFile(buf.data(), fd));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }
  absl::Status Write(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return absl::ResourceExhaustedError(
            absl::StrCat("writing ", path_, ": ", std::strerror(errno)));
      }
      done += static_cast<size_t>(n);
    }
    if (::close(fd_) != 0) {
      fd_ = -1;
      return absl::ResourceExhaustedError(
          absl::StrCat("closing ", path_, ": ", std::strerror(errno)));
    }
    fd_ = -1;
    return absl::OkStatus();
  }

 private:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

// ---------------------------------------------------------------------------
// An allocator for the per-replay graph input and eager buffers: one block,
// handed out in order and reset when everything is freed, so replays at many
// batch sizes do not leave one cached set per size behind.

class ArenaAllocator final : public Allocator {
 public:
  static absl::StatusOr<std::unique_ptr<ArenaAllocator>> Create(Allocator& base,
                                                                size_t bytes) {
    NG_ASSIGN_OR_RETURN(std::shared_ptr<Storage> block,
                        Storage::Allocate(base, bytes));
    return std::unique_ptr<ArenaAllocator>(
        new ArenaAllocator(base.device(), std::move(block)));
  }
  Device device() const override { return device_; }
  absl::StatusOr<void*> AllocateRaw(size_t bytes) override {
    const size_t rounded = Round64(bytes);
    if (used_ + rounded > block_->bytes()) {
      return absl::InternalError(
          absl::StrCat("replay arena: ", bytes, " bytes do not fit (", used_,
                       " of ", block_->bytes(), " in use)"));
    }
    void* p = static_cast<char*>(block_->data()) + used_;
    used_ += rounded;
    ++live_;
    return p;
  }
  void FreeRaw(void*, size_t) override {
    if (--live_ == 0) used_ = 0;
  }

 private:
  ArenaAllocator(Device device, std::shared_ptr<Storage> block)
      : device_(device), block_(std::move(block)) {}
  Device device_;
  std::shared_ptr<Storage> block_;
  size_t used_ = 0;
  int64_t live_ = 0;
};

// ---------------------------------------------------------------------------
// The scenario.

struct CycleResult {
  int cycle = 0;
  int tensors_updated = 0;
  int buffers_moved = 0;  // slots whose storage changed in the update
  std::vector<int64_t> batches;
  int64_t equal = 0, mismatched = 0, refused = 0;
  GraphStats repairs;  // this cycle's
};

struct Outcome {
  ReplayPolicy policy = ReplayPolicy::kFail;
  bool legacy = false;
  int64_t replays = 0;     // replays attempted
  int64_t equal = 0;       // graph output == eager output, bit for bit
  int64_t mismatched = 0;  // silent mismatches
  int64_t refused = 0;     // refused with an error naming the tensors
  std::string first_refusal;
  int64_t tensors_loaded = 0;
  int64_t buffers_moved = 0;
  int first_load = 0;
  GraphStats stats;
  int64_t launches_per_step = 0;
  int64_t parameters = 0;
  double eager_ns_total = 0;
  // Replays that ran (not refused), timed from the call to their end on the
  // device (check, launch and the device's work; synchronized).
  double replay_completed_ns_total = 0;
  int64_t replays_completed = 0;
  double MeanReplayCompletedNs() const {
    return replays_completed ? replay_completed_ns_total / replays_completed
                             : 0.0;
  }
  double capture_ns = 0;
  std::vector<CycleResult> cycles;
  std::string verdict;
  bool ok = true;
};

// What the checkpoints were, once loaded.
struct CheckpointInfo {
  std::string kind;  // synthetic / file / sharded
  std::string given, path;
  std::vector<std::string> files;
  std::string config_json;
  std::optional<CheckpointReport> report;
  std::optional<PreparedCheckpoint> prepared;
};

absl::StatusOr<std::unique_ptr<NormStack>> MakeStack(const Setup& s,
                                                     bool legacy) {
  if (s.model == "qwen3_5") {
    Qwen35NormStackConfig c = s.qwen;
    c.dtype = s.dtype;
    c.allocator = &s.runtime->allocator();
    if (legacy) c.zero_centered_factory = LegacyZeroCenteredFactory();
    NG_ASSIGN_OR_RETURN(auto m, Qwen35NormStack::Create(c));
    return std::unique_ptr<NormStack>(std::move(m));
  }
  Gemma3NormStackConfig c = s.gemma;
  c.dtype = s.dtype;
  c.allocator = &s.runtime->allocator();
  if (legacy) c.zero_centered_factory = LegacyZeroCenteredFactory();
  NG_ASSIGN_OR_RETURN(auto m, Gemma3NormStack::Create(c));
  return std::unique_ptr<NormStack>(std::move(m));
}

std::map<std::string, uint64_t> SlotStorages(Module& model) {
  std::map<std::string, uint64_t> out;
  model.ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
    const Tensor& t = slot.tensor();
    out[std::string(name)] = t.defined() ? t.storage()->id() : 0;
  });
  return out;
}

int CountMoved(const std::map<std::string, uint64_t>& before,
               const std::map<std::string, uint64_t>& after) {
  int moved = 0;
  for (const auto& [name, id] : after) {
    auto it = before.find(name);
    if (it == before.end() || it->second != id) ++moved;
  }
  return moved;
}

GraphStats Minus(const GraphStats& a, const GraphStats& b) {
  GraphStats d;
  d.captures = a.captures - b.captures;
  d.recaptures = a.recaptures - b.recaptures;
  d.rebinds = a.rebinds - b.rebinds;
  d.rebound_args = a.rebound_args - b.rebound_args;
  d.refreshes = a.refreshes - b.refreshes;
  d.violations = a.violations - b.violations;
  return d;
}

std::string RepairsText(const GraphStats& st) {
  std::vector<std::string> parts;
  if (st.recaptures) {
    parts.push_back(absl::StrCat(
        st.recaptures, st.recaptures == 1 ? " recapture" : " recaptures"));
  }
  if (st.rebinds) {
    parts.push_back(absl::StrCat(st.rebinds,
                                 st.rebinds == 1 ? " rebind" : " rebinds", " (",
                                 st.rebound_args, " node args)"));
  }
  if (st.refreshes) {
    parts.push_back(absl::StrCat(
        st.refreshes, st.refreshes == 1 ? " refresh" : " refreshes"));
  }
  return parts.empty() ? "none" : absl::StrJoin(parts, ", ");
}

std::string LoadText(const CheckpointReport& r) {
  std::string out = absl::StrCat(r.load.loaded, " tensors");
  for (const auto& [conversion, n] : r.conversions) {
    absl::StrAppend(&out, ", ", n, " converted ", conversion);
  }
  return out;
}

// Waits for the replay launched at `start_ns` to end on the device and adds
// its time, launch to completion, to the outcome's completed replays.
absl::Status WaitForReplay(Stream& stream, int64_t start_ns, Outcome& outcome) {
  NG_RETURN_IF_ERROR(stream.Synchronize());
  outcome.replay_completed_ns_total += static_cast<double>(NowNs() - start_ns);
  ++outcome.replays_completed;
  return absl::OkStatus();
}

// Replays in a steady state, as in a server's decode loop: back to back, at
// the last cycle's last batch, nothing moved between them, so that their
// checks take the fast path (each replay of the cycles follows a weight
// update or the eager step's freed buffers, so it is checked in full). Timed
// like the others; their outputs are the previous replay's, so not compared
// again. Stops at a refusal (a moved buffer stays moved under the fail
// policy), which the cycles have already reported.
absl::Status SteadyReplays(const NormStack& model, BucketedGraphs& graphs,
                           Allocator& arena, Stream& stream, const Setup& s,
                           std::mt19937_64& rng, Outcome& outcome) {
  if (outcome.policy == ReplayPolicy::kUnchecked) return absl::OkStatus();
  const int64_t batch = s.batches.back().back();
  NG_ASSIGN_OR_RETURN(auto io,
                      StepBuffers::Create("io", model.StepSpecs(batch), arena));
  for (size_t i = 0; i < io->size(); ++i) {
    NG_RETURN_IF_ERROR(io->spec(i).role == StepRole::kInput
                           ? FillNormal(io->tensor(i), rng(), 0.0f, 1.0f)
                           : Poison(io->tensor(i)));
  }
  for (int i = 0; i < kSteadyReplays; ++i) {
    const int64_t start = NowNs();
    const absl::Status replayed = graphs.Run(*io);
    if (replayed.code() == absl::StatusCode::kFailedPrecondition) break;
    NG_RETURN_IF_ERROR(replayed);
    NG_RETURN_IF_ERROR(WaitForReplay(stream, start, outcome));
  }
  return absl::OkStatus();
}

absl::StatusOr<Outcome> RunScenario(const Setup& s, ReplayPolicy policy,
                                    CheckpointInfo& first,
                                    CheckpointInfo* update, bool write_first) {
  Outcome outcome;
  outcome.policy = policy;
  outcome.legacy = s.legacy;
  const std::string tag = absl::StrCat("[", PolicyName(policy), "]");
  std::ostream& out = Progress(s);

  Stage() = "building the norm stack";
  NG_ASSIGN_OR_RETURN(std::unique_ptr<NormStack> model, MakeStack(s, s.legacy));
  outcome.launches_per_step = model->LaunchesPerStep();
  model->ForEachParameter(
      [&](const std::string&, Parameter&) { ++outcome.parameters; });

  // The first scenario writes the synthetic checkpoint and prepares the
  // checkpoints (read, validated against the model, held in host memory);
  // the others reuse them.
  if (write_first) {
    std::unique_ptr<TempFile> temp;
    if (!first.prepared) {
      Stage() = "writing the synthetic checkpoint";
      NG_ASSIGN_OR_RETURN(auto weights, RandomWeights(*model, s.seed));
      std::vector<safetensors::NamedView> views;
      for (auto& [name, t] : weights) views.push_back({name, ViewOf(t)});
      NG_ASSIGN_OR_RETURN(
          std::string bytes,
          safetensors::Serialize(
              views, {{"format", "pt"}, {"generator", "normgraph"}}));
      if (!s.save_checkpoint.empty()) {
        absl::Status saved = safetensors::WriteFile(
            s.save_checkpoint, views,
            {{"format", "pt"}, {"generator", "normgraph"}});
        if (!saved.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "--save_checkpoint=", s.save_checkpoint, ": ", saved.message()));
        }
        first.path = s.save_checkpoint;
      } else {
        NG_ASSIGN_OR_RETURN(
            temp, TempFile::Create("normgraph-synthetic", ".safetensors"));
        NG_RETURN_IF_ERROR(temp->Write(bytes));
        first.path = temp->path();
      }
      NG_ASSIGN_OR_RETURN(CheckpointLocation loc, LocateCheckpoint(first.path));
      first.files = loc.files;
      Stage() = "reading the checkpoint";
      NG_ASSIGN_OR_RETURN(PreparedCheckpoint prepared,
                          PrepareCheckpoint(*model, loc, s.checkpoint_options));
      first.prepared = std::move(prepared);
      out << "checkpoint: synthetic (random weights, Hugging Face names), "
          << first.prepared->report.tensors << " tensors, "
          << (s.save_checkpoint.empty()
                  ? absl::StrCat("in ", first.path,
                                 " (a temporary file, removed once read)")
                  : absl::StrCat("saved to ", first.path))
          << "\n";
    }
    // temp (if any) goes here: the prepared copy is what gets loaded.
  }

  Stage() = "loading the checkpoint";
  NG_ASSIGN_OR_RETURN(
      CheckpointReport loaded,
      LoadPrepared(*model, *first.prepared, s.checkpoint_options));
  if (!first.report) first.report = loaded;
  outcome.first_load = loaded.load.loaded;
  out << absl::StreamFormat("%s loaded %s from %s\n", tag, LoadText(loaded),
                            first.path);

  Stage() = "capturing the graphs";
  NG_ASSIGN_OR_RETURN(std::unique_ptr<Stream> stream_owner,
                      s.runtime->NewStream());
  Stream& stream = *stream_owner;
  Allocator& allocator = s.runtime->allocator();
  StepFunction step;
  NormStack* m = model.get();
  step.specs = [m](int64_t batch) { return m->StepSpecs(batch); };
  step.forward = [m](Stream& st, const StepBuffers& b) {
    return m->Forward(st, b);
  };
  step.owners = {m};
  GraphOptions options;
  options.policy = policy;
  const int64_t capture_start = NowNs();
  NG_ASSIGN_OR_RETURN(auto graphs,
                      BucketedGraphs::Create("decode", stream, step, s.buckets,
                                             options, allocator));
  outcome.capture_ns = static_cast<double>(NowNs() - capture_start);
  out << absl::StreamFormat(
      "%s captured %d graphs of %d nodes (buckets %s) in %s\n", tag,
      s.buckets.size(), outcome.launches_per_step,
      absl::StrJoin(s.buckets, ","), FormatDuration(outcome.capture_ns));

  // The replay inputs and eager buffers come from one arena sized for the
  // largest bucket.
  const StackShape shape = ShapeOf(s);
  NG_ASSIGN_OR_RETURN(
      std::unique_ptr<ArenaAllocator> arena,
      ArenaAllocator::Create(
          allocator, 2 * StepBytes(shape, s.buckets.back()) + 2 * 64 * 64));

  std::mt19937_64 rng(s.seed * 104729 + 7);
  GraphStats before_cycle = graphs->TotalStats();
  for (int cycle = 1; cycle <= s.cycles; ++cycle) {
    Stage() = absl::StrCat("cycle ", cycle, " of ", s.cycles);
    CycleResult cr;
    cr.cycle = cycle;
    // The weight update (RL step): alternate checkpoints, or push generated
    // weights from memory.
    const std::map<std::string, uint64_t> storages = SlotStorages(*model);
    if (update != nullptr) {
      const PreparedCheckpoint& next =
          cycle % 2 == 1 ? *update->prepared : *first.prepared;
      NG_ASSIGN_OR_RETURN(CheckpointReport r,
                          LoadPrepared(*model, next,
                                       cycle % 2 == 1 ? s.update_options
                                                      : s.checkpoint_options));
      if (!update->report) update->report = r;
      cr.tensors_updated = r.load.loaded;
    } else {
      NG_ASSIGN_OR_RETURN(auto weights,
                          RandomWeights(*model, s.seed + 1000 * cycle));
      NG_ASSIGN_OR_RETURN(WeightSet set,
                          WeightSet::FromTensors(std::move(weights)));
      NG_ASSIGN_OR_RETURN(LoadReport r, LoadWeights(*model, set));
      cr.tensors_updated = r.loaded;
    }
    cr.buffers_moved = CountMoved(storages, SlotStorages(*model));
    outcome.tensors_loaded += cr.tensors_updated;
    outcome.buffers_moved += cr.buffers_moved;

    for (int r = 0; r < s.replays_per_cycle; ++r) {
      const int64_t batch = s.batches[cycle - 1][r];
      cr.batches.push_back(batch);
      NG_ASSIGN_OR_RETURN(
          auto io, StepBuffers::Create("io", model->StepSpecs(batch), *arena));
      NG_ASSIGN_OR_RETURN(
          auto eager,
          StepBuffers::Create("eager", model->StepSpecs(batch), *arena));
      for (size_t i = 0; i < io->size(); ++i) {
        if (io->spec(i).role == StepRole::kInput) {
          // The same values for the graph and the eager run.
          const uint64_t seed = rng();
          NG_RETURN_IF_ERROR(FillNormal(io->tensor(i), seed, 0.0f, 1.0f));
          NG_RETURN_IF_ERROR(FillNormal(eager->tensor(i), seed, 0.0f, 1.0f));
        } else {
          // An unwritten output can never match.
          NG_RETURN_IF_ERROR(Poison(io->tensor(i)));
        }
      }
      NG_ASSIGN_OR_RETURN(int64_t bucket, graphs->BucketFor(batch));
      StepBuffers& statics = graphs->static_buffers(bucket);
      for (size_t i = 0; i < statics.size(); ++i) {
        if (statics.spec(i).role != StepRole::kInput) {
          NG_RETURN_IF_ERROR(Poison(statics.tensor(i)));
        }
      }
      const int64_t eager_start = NowNs();
      NG_RETURN_IF_ERROR(model->Forward(stream, *eager));
      NG_RETURN_IF_ERROR(stream.Synchronize());
      outcome.eager_ns_total += static_cast<double>(NowNs() - eager_start);
      ++outcome.replays;
      const int64_t replay_start = NowNs();
      absl::Status replayed = graphs->Run(*io);
      if (replayed.ok()) {
        NG_RETURN_IF_ERROR(WaitForReplay(stream, replay_start, outcome));
      }
      if (!replayed.ok()) {
        if (replayed.code() != absl::StatusCode::kFailedPrecondition) {
          return replayed;
        }
        ++cr.refused;
        if (outcome.first_refusal.empty()) {
          outcome.first_refusal = std::string(replayed.message());
        }
        continue;
      }
      bool same = true;
      for (size_t i = 0; i < io->size(); ++i) {
        if (io->spec(i).role == StepRole::kOutput &&
            !BitwiseEqual(io->tensor(i), eager->tensor(i))) {
          same = false;
        }
      }
      (same ? cr.equal : cr.mismatched) += 1;
    }
    outcome.equal += cr.equal;
    outcome.mismatched += cr.mismatched;
    outcome.refused += cr.refused;
    const GraphStats now = graphs->TotalStats();
    cr.repairs = Minus(now, before_cycle);
    before_cycle = now;
    out << absl::StreamFormat(
        "%s cycle %d/%d: update %d tensors, %s | %d replays at batch %s: %d "
        "equal to eager, %d mismatched, %d refused | repairs: %s\n",
        tag, cycle, s.cycles, cr.tensors_updated,
        cr.buffers_moved == 0
            ? std::string("in place")
            : absl::StrCat(cr.buffers_moved, " buffers moved to new storage"),
        s.replays_per_cycle, absl::StrJoin(cr.batches, ","), cr.equal,
        cr.mismatched, cr.refused, RepairsText(cr.repairs));
    outcome.cycles.push_back(std::move(cr));
  }
  NG_RETURN_IF_ERROR(
      SteadyReplays(*model, *graphs, *arena, stream, s, rng, outcome));
  outcome.stats = graphs->TotalStats();
  return outcome;
}

// The verdict of one run and whether it is what the check expects.
void Judge(Outcome& o) {
  if (o.policy != ReplayPolicy::kUnchecked && o.mismatched > 0) {
    o.ok = false;
    o.verdict = "FAILED: silent mismatch under a checked policy";
  } else if (o.legacy && o.policy == ReplayPolicy::kUnchecked) {
    o.ok = o.mismatched > 0;
    o.verdict = o.ok ? "replays silently read the old gemma_weight (the bug)"
                     : "FAILED: the injected bug did not show";
  } else if (o.legacy && o.policy == ReplayPolicy::kFail) {
    o.ok = o.refused > 0;
    o.verdict = o.ok ? "every affected replay refused, naming the moved buffers"
                     : "FAILED: nothing refused";
  } else if (o.refused > 0) {
    o.ok = false;
    o.verdict = "FAILED: replays refused with nothing injected";
  } else if (o.mismatched > 0) {
    o.ok = false;
    o.verdict = "FAILED: replays differ from eager";
  } else {
    o.verdict = "every replay equal to eager, bit for bit";
  }
}

// Natural order of tensor names: layers.2 before layers.10.
std::vector<std::pair<std::string, int64_t>> SortedByName(
    const std::map<std::string, int64_t>& m) {
  std::vector<std::pair<std::string, int64_t>> v(m.begin(), m.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return NaturalLess(a.first, b.first);
  });
  return v;
}

Json ToJson(const Outcome& o) {
  const GraphStats& st = o.stats;
  Json j;
  j["policy"] = std::string(PolicyName(o.policy));
  j["legacy_loader"] = o.legacy;
  j["verdict"] = o.verdict;
  j["ok"] = o.ok;
  j["replays"] = o.replays;
  j["equal_to_eager"] = o.equal;
  j["mismatched"] = o.mismatched;
  j["refused"] = o.refused;
  j["tensors_loaded"] = o.tensors_loaded;
  j["buffers_moved"] = o.buffers_moved;
  j["nodes_per_step"] = o.launches_per_step;
  j["parameters"] = o.parameters;
  j["checks"] = st.checks;
  j["violations"] = st.violations;
  Json by_tensor = Json::object();
  for (const auto& [name, n] : SortedByName(st.violations_by_tensor)) {
    by_tensor[name] = n;
  }
  j["violations_by_tensor"] = by_tensor;
  j["captures"] = st.captures;
  j["recaptures"] = st.recaptures;
  j["rebinds"] = st.rebinds;
  j["rebound_args"] = st.rebound_args;
  j["refreshes"] = st.refreshes;
  j["graph_replays"] = st.replays;
  j["mean_replay_us"] = st.replays ? st.replay_ns / 1e3 / st.replays : 0.0;
  const double completed_ns = o.MeanReplayCompletedNs();
  j["mean_replay_completed_us"] = completed_ns / 1e3;
  j["fast_checks"] = st.fast_checks;
  if (st.checks > 0) {
    j["mean_check_us"] = st.check_ns / 1e3 / st.checks;
  } else {
    j["mean_check_us"] = nullptr;  // unchecked: no checks
  }
  if (st.fast_checks > 0) {  // nothing moved since the last clean check
    j["mean_fast_check_us"] = st.fast_check_ns / 1e3 / st.fast_checks;
  } else {
    j["mean_fast_check_us"] = nullptr;
  }
  j["mean_eager_step_us"] =
      o.replays ? o.eager_ns_total / 1e3 / o.replays : 0.0;
  // Against a replay to its completion: on the GPU, the host's launch call
  // returns long before the replay ends.
  j["check_share_of_replay"] =
      completed_ns > 0 && st.checks
          ? (st.check_ns / double(st.checks)) / completed_ns
          : 0.0;
  j["capture_ms_total"] = st.capture_ns / 1e6;
  j["rebind_ms_total"] = st.rebind_ns / 1e6;
  Json cycles = Json::array();
  for (const CycleResult& c : o.cycles) {
    cycles.push_back({{"cycle", c.cycle},
                      {"tensors_updated", c.tensors_updated},
                      {"buffers_moved", c.buffers_moved},
                      {"batches", c.batches},
                      {"equal_to_eager", c.equal},
                      {"mismatched", c.mismatched},
                      {"refused", c.refused},
                      {"recaptures", c.repairs.recaptures},
                      {"rebinds", c.repairs.rebinds},
                      {"refreshes", c.repairs.refreshes}});
  }
  j["cycles"] = cycles;
  if (!o.first_refusal.empty()) j["first_refusal"] = o.first_refusal;
  return j;
}

void PrintSummary(const Setup& s, const Outcome& o) {
  const GraphStats& st = o.stats;
  const std::string tag =
      absl::StrCat(PolicyName(o.policy), o.legacy ? ", legacy loader" : "");
  std::cout << absl::StreamFormat(
      "\nsummary [%s]: %d cycles, %d replays: %d equal to eager bit for bit, "
      "%d mismatched, %d refused; %d tensors updated\n",
      tag, s.cycles, o.replays, o.equal, o.mismatched, o.refused,
      o.tensors_loaded);
  const std::string checks =
      o.policy == ReplayPolicy::kUnchecked
          ? std::string("no checks (unchecked policy)")
          : absl::StrCat(st.checks, " checks, ", st.violations,
                         st.violations == 1 ? " violation" : " violations");
  std::cout << absl::StreamFormat(
      "  graph: %d nodes per step, %d buckets; %s; repairs: %s\n",
      o.launches_per_step, s.buckets.size(), checks, RepairsText(st));
  if (st.replays > 0) {
    const double replay_ns = static_cast<double>(st.replay_ns) / st.replays;
    const double completed_ns = o.MeanReplayCompletedNs();
    const bool cpu = s.runtime->device() == Device::Cpu();
    std::string check_text;
    if (st.checks > 0) {
      auto share = [&](double ns) {
        return completed_ns > 0 ? 100 * ns / completed_ns : 0.0;
      };
      const double check_ns = static_cast<double>(st.check_ns) / st.checks;
      check_text = absl::StrFormat("check %s (%.2f%% of a replay",
                                   FormatDuration(check_ns), share(check_ns));
      // The two kinds apart: a check with nothing moved since the last clean
      // one takes the fast path; after a change (a weight update, a freed
      // storage) the full check runs.
      const int64_t full_checks = st.checks - st.fast_checks;
      if (st.fast_checks > 0) {
        const double fast_ns =
            static_cast<double>(st.fast_check_ns) / st.fast_checks;
        absl::StrAppendFormat(
            &check_text, "; %d with nothing moved: %s, %.3f%%", st.fast_checks,
            FormatDuration(fast_ns), share(fast_ns));
      }
      if (full_checks > 0) {
        const double full_ns =
            static_cast<double>(st.check_ns - st.fast_check_ns) / full_checks;
        absl::StrAppendFormat(&check_text, "; %d full, after a change: %s",
                              full_checks, FormatDuration(full_ns));
      }
      check_text += ")";
    } else {
      check_text = "no check";
    }
    // On the GPU the launch call returns before the replay ends: both times.
    const std::string replay_text =
        cpu ? absl::StrCat(FormatDuration(completed_ns), " (CPU backend)")
            : absl::StrCat(FormatDuration(completed_ns),
                           " (synchronized; the host's cudaGraphLaunch call ",
                           FormatDuration(replay_ns), ")");
    std::cout << absl::StreamFormat(
        "  time per replay %s; %s; eager step %s (synchronized)\n", replay_text,
        check_text,
        FormatDuration(o.replays ? o.eager_ns_total / o.replays : 0.0));
  }
  if (!st.violations_by_tensor.empty()) {
    std::cout << "  violations by tensor:\n";
    const auto sorted = SortedByName(st.violations_by_tensor);
    int shown = 0;
    for (const auto& [name, n] : sorted) {
      if (++shown > 8) {
        std::cout << "    ... and " << sorted.size() - 8 << " more tensors\n";
        break;
      }
      std::cout << "    " << name << ": " << n << "\n";
    }
  }
  if (!o.first_refusal.empty()) {
    // The header and the first few named tensors.
    std::vector<absl::string_view> lines =
        absl::StrSplit(o.first_refusal, '\n');
    if (lines.size() > 4) lines.resize(4);
    std::cout << "  first refusal: " << absl::StrJoin(lines, "\n  ")
              << "\n  ...\n";
  }
}

Json CheckpointJson(const CheckpointInfo& c, const CheckpointOptions& o) {
  Json j;
  j["kind"] = c.kind;
  j["given"] = c.given;
  j["path"] = c.path;
  j["files"] = c.files;
  j["config_json"] =
      c.config_json.empty() ? Json(nullptr) : Json(c.config_json);
  j["ignore_unexpected"] = o.ignore_unexpected;
  j["check_finite"] = o.check_finite;
  if (c.prepared || c.report) {
    const CheckpointReport& r = c.report ? *c.report : c.prepared->report;
    j["prefix"] = r.prefix;
    j["prefix_detected"] = r.prefix_detected;
    j["shards"] = r.shards;
    j["tensors"] = r.tensors;
    j["loaded"] = c.report
                      ? c.report->load.loaded
                      : static_cast<int>(c.prepared->weights.tensors().size());
    j["norm_bytes"] = r.bytes;
    j["ignored_count"] = r.ignored.size();
    j["ignored"] = r.ignored;
    Json conv = Json::object();
    for (const auto& [k, n] : r.conversions) conv[k] = n;
    j["conversions"] = conv;
  }
  return j;
}

Json ConfigJson(const Setup& s) {
  Json c;
  c["model"] = s.model;
  if (s.hf) {
    c["model_type"] = s.hf->model_type;
    if (!s.hf->outer_model_type.empty()) {
      c["outer_model_type"] = s.hf->outer_model_type;
    }
    c["config_json"] = s.hf->source;
  }
  const bool qwen = s.model == "qwen3_5";
  c["num_hidden_layers"] =
      qwen ? s.qwen.num_hidden_layers : s.gemma.num_hidden_layers;
  c["hidden_size"] = qwen ? s.qwen.hidden_size : s.gemma.hidden_size;
  c["num_attention_heads"] =
      qwen ? s.qwen.num_attention_heads : s.gemma.num_attention_heads;
  c["num_key_value_heads"] =
      qwen ? s.qwen.num_key_value_heads : s.gemma.num_key_value_heads;
  c["head_dim"] = qwen ? s.qwen.head_dim : s.gemma.head_dim;
  if (qwen) {
    c["linear_num_value_heads"] = s.qwen.linear_num_value_heads;
    c["linear_value_head_dim"] = s.qwen.linear_value_head_dim;
    const StackShape sh = ShapeOf(s);
    int64_t full = 0;
    for (bool f : sh.full) full += f;
    c["full_attention_layers"] = full;
  }
  c["rms_norm_eps"] = qwen ? s.qwen.rms_norm_eps : s.gemma.rms_norm_eps;
  c["dtype"] = std::string(DTypeName(s.dtype));
  c["device"] = s.runtime != nullptr ? s.runtime->Describe() : s.device_name;
  c["buckets"] = s.buckets;
  c["cycles"] = s.cycles;
  c["replays_per_cycle"] = s.replays_per_cycle;
  c["seed"] = s.seed;
  Json policies = Json::array();
  for (ReplayPolicy p : s.policies) policies.push_back(PolicyName(p));
  c["policies"] = policies;
  c["inject"] = s.legacy ? "legacy-loader" : "none";
  c["max_memory_bytes"] = s.max_memory;
  c["max_memory_source"] = s.max_memory_source;
  if (!s.resolved_against.empty()) {
    c["relative_paths_resolved_against"] = s.resolved_against;
  }
  return c;
}

int ExitCodeFor(const absl::Status& s, bool validating) {
  if (validating) return kExitBadInput;
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnavailable:
      return kExitBadInput;
    default:
      return kExitInternal;
  }
}

// The run, start to end; fills `json` as it goes (so an error still reports
// what was resolved).
int Run(const CommandLine& cl, Json& json) {
  Setup s;
  auto fail = [&](absl::Status status, bool validating) {
    const int code = ExitCodeFor(status, validating);
    if (!validating) {
      status = absl::Status(status.code(), absl::StrCat("while ", Stage(), ": ",
                                                        status.message()));
    }
    json["ok"] = false;
    json["exit_code"] = code;
    json["error"] = {{"code", StatusCodeName(status.code())},
                     {"message", std::string(status.message())},
                     {"stage", Stage()}};
    if (!s.json) {
      std::cerr << "normgraph: " << StatusCodeName(status.code()) << ": "
                << status.message() << "\n";
    }
    return code;
  };

  absl::Status valid = ValidateSetup(cl, s);
  if (s.runtime != nullptr || !s.buckets.empty())
    json["config"] = ConfigJson(s);
  if (!valid.ok()) return fail(valid, true);

  std::ostream& out = Progress(s);
  const bool qwen = s.model == "qwen3_5";
  const int64_t layers =
      qwen ? s.qwen.num_hidden_layers : s.gemma.num_hidden_layers;
  const int64_t hidden = qwen ? s.qwen.hidden_size : s.gemma.hidden_size;
  std::string policies;
  for (ReplayPolicy p : s.policies) {
    absl::StrAppend(&policies, policies.empty() ? "" : ", ", PolicyName(p));
  }
  out << absl::StreamFormat(
      "normgraph: %s (%d layers, hidden %d, %s)%s on %s; buckets %s; %d "
      "%s of %d %s; %s %s%s; seed %d\n",
      s.model, layers, hidden, DTypeName(s.dtype),
      s.hf ? absl::StrCat(" from ", s.hf->source) : "", s.runtime->Describe(),
      absl::StrJoin(s.buckets, ","), s.cycles,
      s.cycles == 1 ? "cycle" : "cycles", s.replays_per_cycle,
      s.replays_per_cycle == 1 ? "replay" : "replays",
      s.policies.size() == 1 ? "policy" : "policies", policies,
      s.legacy ? "; pre-fix loader injected" : "", s.seed);

  // Memory, before anything is allocated.
  const MemoryEstimate memory = EstimateMemory(s);
  json["memory"] = {{"estimate_bytes", memory.total()},
                    {"parameters_bytes", memory.parameters},
                    {"step_buffers_bytes", memory.step_buffers},
                    {"graphs_bytes", memory.graphs},
                    {"host_weights_bytes", memory.host},
                    {"process_bytes", memory.base},
                    {"available_bytes", s.max_memory},
                    {"available_source", s.max_memory_source}};
  absl::Status fits = CheckMemory(s, memory);
  if (!fits.ok()) return fail(fits, true);
  out << "memory: about " << FormatBytes(memory.total()) << " needed, "
      << (s.max_memory == UINT64_MAX
              ? std::string("no limit found")
              : absl::StrCat(FormatBytes(s.max_memory), " available (",
                             s.max_memory_source, ")"))
      << "\n";

  // Checkpoints.
  CheckpointInfo first, update;
  if (s.checkpoint) {
    first.kind = std::string(s.checkpoint->kind_name());
    first.given = s.checkpoint_given;
    first.path = s.checkpoint->path;
    first.files = s.checkpoint->files;
    first.config_json = s.checkpoint->config_json;
  } else {
    first.kind = "synthetic";
  }
  if (s.update) {
    update.kind = std::string(s.update->kind_name());
    update.given = s.update_given;
    update.path = s.update->path;
    update.files = s.update->files;
    update.config_json = s.update->config_json;
  }
  auto report_checkpoints = [&]() {
    json["checkpoint"] = CheckpointJson(first, s.checkpoint_options);
    json["update_checkpoint"] =
        s.update ? CheckpointJson(update, s.update_options) : Json(nullptr);
  };

  // Prepare real checkpoints against a model of the run's shape first: every
  // error in them is found before anything is captured.
  if (s.checkpoint || s.update) {
    Stage() = "reading the checkpoints";
    absl::StatusOr<std::unique_ptr<NormStack>> probe = MakeStack(s, false);
    if (!probe.ok()) return fail(probe.status(), false);
    struct Item {
      CheckpointInfo* info;
      const CheckpointOptions* options;
      const std::optional<CheckpointLocation>* location;
      const char* flag;
      const std::string* given;
    };
    for (const Item& item :
         {Item{&first, &s.checkpoint_options, &s.checkpoint,
               s.hf && s.checkpoint_given == cl.Get("model_dir") &&
                       cl.Get("checkpoint").empty()
                   ? "model_dir"
                   : "checkpoint",
               &s.checkpoint_given},
          Item{&update, &s.update_options, &s.update, "update_checkpoint",
               &s.update_given}}) {
      if (!*item.location) continue;
      absl::StatusOr<PreparedCheckpoint> prepared =
          PrepareCheckpoint(**probe, **item.location, *item.options);
      if (!prepared.ok()) {
        std::string message = absl::StrReplaceAll(
            prepared.status().message(),
            {{"(ignore_unexpected skips them)",
              "(--ignore_unexpected skips and lists them)"}});
        std::string hint;
        if (!s.hf && !(*item.location)->config_json.empty() &&
            (absl::StrContains(prepared.status().message(), "does not match") ||
             absl::StrContains(prepared.status().message(),
                               "missing from the checkpoint"))) {
          hint +=
              absl::StrCat("\n(", (*item.location)->config_json,
                           " exists: --model_dir=", (*item.location)->directory,
                           " takes the model's sizes from it)");
        }
        report_checkpoints();
        return fail(absl::Status(prepared.status().code(),
                                 absl::StrCat("--", item.flag, "=", *item.given,
                                              ": ", message, hint)),
                    true);
      }
      item.info->prepared = *std::move(prepared);
      const CheckpointReport& r = item.info->prepared->report;
      out << absl::StreamFormat(
          "%s: %s %s (%d %s, %d tensors): %d norm weights%s",
          item.flag == std::string("update_checkpoint") ? "update checkpoint"
                                                        : "checkpoint",
          item.info->kind, item.info->path, r.shards,
          r.shards == 1 ? "file" : "shards", r.tensors,
          item.info->prepared->weights.tensors().size(),
          r.prefix == kModelPrefix
              ? std::string("")
              : absl::StrCat(" under prefix '", r.prefix, "'"));
      if (!r.ignored.empty()) {
        out << absl::StreamFormat("; ignored %d tensors: %s", r.ignored.size(),
                                  SummarizeNames(r.ignored, 6));
      }
      for (const auto& [conversion, n] : r.conversions) {
        out << absl::StreamFormat("; %d to convert %s", n, conversion);
      }
      out << "\n";
    }
  }

  json["runs"] = Json::array();
  std::vector<Outcome> outcomes;
  bool first_scenario = true;
  for (ReplayPolicy policy : s.policies) {
    if (!first_scenario && !s.json) std::cout << "\n";
    absl::StatusOr<Outcome> outcome = RunScenario(
        s, policy, first, s.update ? &update : nullptr, first_scenario);
    first_scenario = false;
    if (!outcome.ok()) {
      report_checkpoints();
      json["peak_rss_bytes"] = PeakRss();
      return fail(outcome.status(), false);
    }
    Judge(*outcome);
    json["runs"].push_back(ToJson(*outcome));
    if (!s.json) PrintSummary(s, *outcome);
    outcomes.push_back(*std::move(outcome));
  }
  report_checkpoints();
  bool ok = true;
  std::vector<std::string> verdicts;
  for (const Outcome& o : outcomes) {
    ok = ok && o.ok;
    verdicts.push_back(
        absl::StrFormat("  %-10s %s", PolicyName(o.policy), o.verdict));
  }
  json["graph"] = {{"nodes_per_step", outcomes[0].launches_per_step},
                   {"buckets", s.buckets.size()},
                   {"nodes_total", outcomes[0].launches_per_step *
                                       static_cast<int64_t>(s.buckets.size())}};
  json["peak_rss_bytes"] = PeakRss();
  const int code = ok ? kExitOk : kExitCheckFailed;
  json["ok"] = ok;
  json["exit_code"] = code;
  // One string; each policy's own verdict is in runs[].verdict.
  std::string overall;
  if (outcomes.size() == 1 && !s.legacy) {
    overall = outcomes[0].verdict;
  } else if (ok) {
    overall = "every policy as expected with the pre-fix loader injected";
  } else {
    for (const Outcome& o : outcomes) {
      if (!o.ok && overall.empty()) {
        overall = absl::StrCat(PolicyName(o.policy), ": ", o.verdict);
      }
    }
  }
  json["verdict"] = overall;
  if (!s.json) {
    if (outcomes.size() == 1 && !s.legacy) {
      std::cout << "\nverdict: " << outcomes[0].verdict << "\n";
    } else {
      std::cout << "\nverdict" << (s.legacy ? " (--inject=legacy-loader)" : "")
                << ":\n"
                << absl::StrJoin(verdicts, "\n") << "\n";
    }
  }
  return code;
}

// The report as text. Paths, flag values and messages may hold bytes that
// are not UTF-8 (a Latin-1 file name): they are written as U+FFFD instead of
// making the dump throw, so --json always prints one JSON object.
std::string JsonText(const nlohmann::json& json) {
  return json.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int Main(int argc, char** argv) {
  // Progress lines appear as they happen, also through a pipe.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Json json;
  json["ok"] = false;
  json["exit_code"] = kExitInternal;
  json["error"] = nullptr;
  bool as_json = false;
  int code = kExitInternal;
  try {
    absl::StatusOr<CommandLine> cl = ParseCommandLine(argc, argv);
    if (!cl.ok()) {
      // A flag error: --json is known from the first pass.
      as_json = JsonRequested(argc, argv);
      json["exit_code"] = kExitBadInput;
      json["error"] = {{"code", StatusCodeName(cl.status().code())},
                       {"message", std::string(cl.status().message())},
                       {"stage", "parsing the command line"}};
      if (as_json) {
        std::cout << JsonText(json) << "\n";
      } else {
        std::cerr << "normgraph: " << StatusCodeName(cl.status().code()) << ": "
                  << cl.status().message() << "\n";
      }
      return kExitBadInput;
    }
    if (cl->help || cl->version) {
      const std::string text = cl->help ? HelpText() : VersionText();
      if (cl->json) {  // one JSON object, as --json promises
        Json out;
        out["ok"] = true;
        out["exit_code"] = kExitOk;
        out[cl->help ? "help" : "version"] = text;
        std::cout << JsonText(out) << "\n";
      } else {
        std::cout << text;
      }
      return kExitOk;
    }
    as_json = cl->json;
    code = Run(*cl, json);
  } catch (const std::bad_alloc&) {
    code = kExitBadInput;
    json["ok"] = false;
    json["exit_code"] = code;
    const std::string message = absl::StrCat(
        "out of memory while ", Stage(),
        " (std::bad_alloc); the run needs more than this machine gives it: "
        "use fewer --layers, a smaller --hidden or fewer --buckets");
    json["error"] = {{"code", "RESOURCE_EXHAUSTED"},
                     {"message", message},
                     {"stage", Stage()}};
    if (!as_json)
      std::cerr << "normgraph: RESOURCE_EXHAUSTED: " << message << "\n";
  } catch (const std::exception& e) {
    code = kExitInternal;
    json["ok"] = false;
    json["exit_code"] = code;
    json["error"] = {
        {"code", "INTERNAL"},
        {"message", absl::StrCat("exception while ", Stage(), ": ", e.what())},
        {"stage", Stage()}};
    if (!as_json) {
      std::cerr << "normgraph: INTERNAL: exception while " << Stage() << ": "
                << e.what() << "\n";
    }
  }
  if (as_json) std::cout << JsonText(json) << "\n";
  return code;
}

}  // namespace
}  // namespace normgraph

int main(int argc, char** argv) { return normgraph::Main(argc, argv); }
