# Programs of examples/ run as real processes.
if(CONDUIT_BUILD_EXAMPLES)  # examples/ is added after tests/: test the option, not the target
  # ShutdownOnSignal: SIGTERM/SIGINT drain (close 1001, exit 0); a second signal exits 130.
  add_test(NAME examples.shutdown_signal
    COMMAND ${CONDUIT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/examples/shutdown_signal_test.py
            $<TARGET_FILE:example_echo_server>)
  set_tests_properties(examples.shutdown_signal PROPERTIES LABELS "integration" TIMEOUT 120)
  # A topic-style broadcast on conduit::Group, driven by Python websockets and plain HTTP.
  add_test(NAME examples.topics_server
    COMMAND ${CONDUIT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/examples/test_topics_server.py
            --example $<TARGET_FILE:example_topics_server>)
  set_tests_properties(examples.topics_server PROPERTIES LABELS "integration;interop" TIMEOUT 60
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()
