// Runs a libFuzzer target's entry point over every file of the corpus
// directories given as arguments, without libFuzzer: Bazel builds the targets
// with its own compiler and runs their seed corpora (tests/fuzz/corpus/) in
// every CI configuration (normal, ASan, TSan, UBSan), so the targets keep
// building and the seeds stay harmless as the code changes. tools/fuzz.sh
// does the actual fuzzing, with clang.

#include <dirent.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  int inputs = 0;
  for (int i = 1; i < argc; ++i) {
    DIR* dir = opendir(argv[i]);
    if (dir == nullptr) {
      std::fprintf(stderr, "cannot open corpus directory %s\n", argv[i]);
      return 1;
    }
    std::vector<std::string> files;
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') files.push_back(std::string(argv[i]) + "/" + entry->d_name);
    }
    closedir(dir);
    for (const std::string& file : files) {
      std::ifstream in(file, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::printf("%s (%zu bytes)\n", file.c_str(), bytes.size());
      std::fflush(stdout);
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++inputs;
    }
  }
  std::printf("%d inputs ran\n", inputs);
  return inputs > 0 ? 0 : 1;
}
