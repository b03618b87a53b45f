#include "cli/cli.h"

int main(int argc, char** argv) { return extrap::run_cli(argc, argv); }
