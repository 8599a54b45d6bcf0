# The benchmark tools (issue 5 item 2) checked for correctness, not timed:
# conduit-send-floor, the Node ws broadcast baseline and bench/summarize.py.
if(CONDUIT_BUILD_BENCH)  # the tools are built with the bench (release preset only)
  add_test(NAME bench.tools
    COMMAND ${CONDUIT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/bench/test_bench_tools.py
      --send-floor $<TARGET_FILE:conduit-send-floor> --node ${CONDUIT_NODE}
    WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/bench)
  set_tests_properties(bench.tools PROPERTIES LABELS "integration;interop" TIMEOUT 120
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()
