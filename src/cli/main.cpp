// llmforge: one binary, one subcommand per pipeline stage (DESIGN.md §3). The subcommands are registered in app.cpp.
#include "cli/common.h"

int main(int argc, char** argv) { return llmforge::cli::run(argc, argv); }
