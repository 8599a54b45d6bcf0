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
conduit_echo_test(io_engine     test_io_engine.py)

# The same server tests on the io_uring engine (label uring): the echo peers
# (Python websockets, Node ws, raw protocol and HTTP), heartbeats, compression,
# threads, and (ops.cmake) close timeouts, shutdown, slow consumers, relay and
# a fan-out stall, with CONDUIT_IO=io_uring switching every conduitd they
# start; and (server.cmake) the in-process server tests. Left out: tests asserting conduitd's exact log lines (the engine
# adds one) and TLS (which runs on epoll).
function(conduit_uring_test name dir module timeout)
  add_test(NAME uring.${name}
    COMMAND ${CONDUIT_PYTHON} ${dir}/${module} --conduitd $<TARGET_FILE:conduitd> ${ARGN}
    WORKING_DIRECTORY ${dir})
  set_tests_properties(uring.${name} PROPERTIES LABELS "integration;uring" TIMEOUT ${timeout}
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;CONDUIT_NODE=${CONDUIT_NODE};CONDUIT_IO=io_uring")
endfunction()
foreach(m python_peer raw_protocol http heartbeat compression threads node_peer io_engine)
  conduit_uring_test(echo.${m} ${CONDUIT_ECHO_TESTS_DIR} test_${m}.py 120)
endforeach()
