// Runs the Catch2 session of a test program. The Catch2 implementation (half
// of catch.hpp) is compiled once, in catch_session.cc, and linked into every
// test program: a test program with its own main() (privilege checks,
// arguments of its own) calls this instead of defining CATCH_CONFIG_RUNNER,
// which would compile the implementation again (over a minute per program).
//
//   int main(int argc, char** argv) {
//     if (!Privileged()) return 77;
//     return dpv2::testing::RunCatchSession(argc, argv);
//   }
#ifndef DPV2_TESTS_CATCH_SESSION_H_
#define DPV2_TESTS_CATCH_SESSION_H_

namespace dpv2::testing {

// Catch::Session().run(argc, argv): parses Catch's arguments, runs the
// selected test cases, returns the exit code.
int RunCatchSession(int argc, char** argv);

}  // namespace dpv2::testing

#endif  // DPV2_TESTS_CATCH_SESSION_H_
