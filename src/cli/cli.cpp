#include "cli/cli.h"
#include <iostream>
#include "position/scheme.h"
namespace extrap {
int run_cli(int argc, char** argv) {
  for (auto& s : registered_schemes()) std::cout << s.name << "\n";
  return 0;
}
}
