// A main() for fuzz targets built without libFuzzer (g++, the default build):
// runs LLVMFuzzerTestOneInput once per file given on the command line
// (directories are walked). This is how every checked-in corpus runs as a
// regression test under `bazel test //...`.

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc,
                                                          char*** argv);

namespace {

bool Collect(const std::string& path, std::vector<std::string>& files) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  if (!S_ISDIR(st.st_mode)) {
    files.push_back(path);
    return true;
  }
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return false;
  std::vector<std::string> entries;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") entries.push_back(path + "/" + name);
  }
  closedir(dir);
  std::sort(entries.begin(), entries.end());
  for (const std::string& e : entries) {
    if (!Collect(e, files)) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-')
      continue;  // libFuzzer-style flags are ignored here
    if (!Collect(arg, files)) {
      std::fprintf(stderr, "replay: cannot read %s\n", arg.c_str());
      return 1;
    }
  }
  if (files.empty()) {
    std::fprintf(stderr,
                 "replay: no inputs given (a regression test over nothing "
                 "proves nothing)\n");
    return 1;
  }
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  std::printf("replayed %zu inputs\n", files.size());
  return 0;
}
