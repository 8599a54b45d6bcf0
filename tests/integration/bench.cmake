# The benchmark tools checked for correctness, not timed: conduit-send-floor,
# the Beast and Node ws baselines (every message delivered, one frame each for
# Beast), bench/summarize.py, and scripts/bench echo shortened to seconds (the
# optional uWebSockets column picked up from BENCH_UWS_ECHO, or skipped).
if(CONDUIT_BUILD_BENCH)  # the tools are built with the bench (release preset only)
  add_test(NAME bench.tools
    COMMAND ${CONDUIT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/bench/test_bench_tools.py
      --send-floor $<TARGET_FILE:conduit-send-floor> --node ${CONDUIT_NODE}
      --beast-echo $<TARGET_FILE:beast-echo-baseline> --beast-broadcast $<TARGET_FILE:beast-broadcast-baseline>
      --build-dir ${CMAKE_BINARY_DIR}
    WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/bench)
  set_tests_properties(bench.tools PROPERTIES LABELS "integration;interop" TIMEOUT 400
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()

# `conduit bench` / `bench fanout` as scripts see them: the real binary against
# conduitd (echo, broadcast, TLS, a server closing with 1009); exit status,
# stdout, stderr. Needs only the CLI and conduitd, so it runs in every preset.
if(TARGET conduit_cli)
  add_test(NAME bench.cli
    COMMAND ${CONDUIT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/bench/cli_bench_test.py
      $<TARGET_FILE:conduit_cli> $<TARGET_FILE:conduitd>)
  set_tests_properties(bench.cli PROPERTIES LABELS "integration" TIMEOUT 300
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()
