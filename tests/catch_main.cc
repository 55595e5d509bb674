// The main() of every Catch2 test program that needs no main of its own.
#include "catch_session.h"

int main(int argc, char** argv) { return dpv2::testing::RunCatchSession(argc, argv); }
