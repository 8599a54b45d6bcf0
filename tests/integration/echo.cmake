# conduitd --mode echo as a child process, driven by independent peers
# (Python websockets, Node ws) and by raw sockets for what no library sends.
# Each test module starts its own conduitd instances on kernel-chosen ports.

set(CONDUIT_ECHO_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR}/echo)

# conduit_echo_test(NAME MODULE LABELS...): one ctest per Python test module.
function(conduit_echo_test name module)
  add_test(NAME echo.${name}
    COMMAND ${CONDUIT_PYTHON} ${CONDUIT_ECHO_TESTS_DIR}/${module} --conduitd $<TARGET_FILE:conduitd>
    WORKING_DIRECTORY ${CONDUIT_ECHO_TESTS_DIR})
  set_tests_properties(echo.${name} PROPERTIES
    LABELS "integration;${ARGN}"
    TIMEOUT 120
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;CONDUIT_NODE=${CONDUIT_NODE}")
endfunction()

conduit_echo_test(python_peer   test_python_peer.py  interop)
conduit_echo_test(raw_protocol  test_raw_protocol.py)
conduit_echo_test(http          test_http.py)
conduit_echo_test(heartbeat     test_heartbeat.py    interop)
conduit_echo_test(compression   test_compression.py  interop)
conduit_echo_test(threads       test_threads.py      mt interop)
conduit_echo_test(config        test_config.py)

# Node ws as the client for echo, oversize and large messages (its heartbeat and
# compression scenarios run inside the modules above).
conduit_echo_test(node_peer     test_node_peer.py    interop)
