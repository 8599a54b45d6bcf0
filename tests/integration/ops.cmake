# Production operations and broadcast fan-out correctness (
# item 3): conduitd as a child process, driven by raw sockets, Python
# websockets and Node ws. Each module starts its own conduitd instances on
# kernel-chosen ports and stops them by PID.

set(CONDUIT_OPS_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR}/ops)

# conduit_ops_test(NAME MODULE TIMEOUT [LABELS l...] [ARGS unittest-args...] [ENV k=v...]):
# one ctest per Python module (or per selection of its test cases).
function(conduit_ops_test name module timeout)
  cmake_parse_arguments(T "" "" "LABELS;ARGS;ENV" ${ARGN})
  add_test(NAME ops.${name}
    COMMAND ${CONDUIT_PYTHON} ${CONDUIT_OPS_TESTS_DIR}/${module} --conduitd $<TARGET_FILE:conduitd> ${T_ARGS}
    WORKING_DIRECTORY ${CONDUIT_OPS_TESTS_DIR})
  set_tests_properties(ops.${name} PROPERTIES
    LABELS "integration;${T_LABELS}"
    TIMEOUT ${timeout}
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;CONDUIT_NODE=${CONDUIT_NODE};${T_ENV}")
endfunction()

conduit_ops_test(admission      test_admission.py      120 LABELS interop)
conduit_ops_test(slow_consumer  test_slow_consumer.py  180 LABELS slow)
conduit_ops_test(shutdown       test_shutdown.py       120)
conduit_ops_test(metrics_logs   test_metrics_logs.py   120 LABELS interop)
conduit_ops_test(tls            test_tls.py            120 LABELS interop)
# 1000 subscribers, W=32, every message in order; then 10 that stop reading → 1008.
conduit_ops_test(fanout         test_fanout.py         180 LABELS slow
  ARGS Fanout.test_1000_subscribers_window_32_all_in_order)
conduit_ops_test(fanout_stall   test_fanout.py         180 LABELS slow
  ARGS Fanout.test_10_subscribers_stop_reading)
conduit_ops_test(fanout_mt      test_fanout.py         180 LABELS mt slow
  ARGS Fanout.test_1000_subscribers_window_32_all_in_order ENV CONDUIT_FANOUT_THREADS=2)
conduit_ops_test(relay          test_relay.py          120 LABELS interop ARGS Relay)
# A room spread over three event loops: every relayed message crosses threads.
conduit_ops_test(relay_mt       test_relay.py          180 LABELS mt ARGS RelayThreads)
conduit_ops_test(close_timeout  test_close_timeout.py  120)

# The io_uring subset (label uring; see echo.cmake).
foreach(m slow_consumer shutdown close_timeout admission)
  conduit_uring_test(ops.${m} ${CONDUIT_OPS_TESTS_DIR} test_${m}.py 180)
endforeach()
conduit_uring_test(ops.relay ${CONDUIT_OPS_TESTS_DIR} test_relay.py 120 Relay)
conduit_uring_test(ops.relay_mt ${CONDUIT_OPS_TESTS_DIR} test_relay.py 180 RelayThreads)
conduit_uring_test(ops.fanout_stall ${CONDUIT_OPS_TESTS_DIR} test_fanout.py 180 Fanout.test_10_subscribers_stop_reading)
