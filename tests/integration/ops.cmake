# Production operations (issue 3) and broadcast fan-out correctness (issue 5
# item 3): conduitd as a child process, driven by raw sockets, Python
# websockets and Node ws. Each module starts its own conduitd instances on
# kernel-chosen ports and stops them by PID.

set(CONDUIT_OPS_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR}/ops)

# conduit_ops_test(NAME MODULE TIMEOUT LABELS...): one ctest per Python module.
function(conduit_ops_test name module timeout)
  add_test(NAME ops.${name}
    COMMAND ${CONDUIT_PYTHON} ${CONDUIT_OPS_TESTS_DIR}/${module} --conduitd $<TARGET_FILE:conduitd>
    WORKING_DIRECTORY ${CONDUIT_OPS_TESTS_DIR})
  set_tests_properties(ops.${name} PROPERTIES
    LABELS "integration;${ARGN}"
    TIMEOUT ${timeout}
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;CONDUIT_NODE=${CONDUIT_NODE}")
endfunction()

conduit_ops_test(admission      test_admission.py      120 interop)
conduit_ops_test(slow_consumer  test_slow_consumer.py  180 slow)
conduit_ops_test(shutdown       test_shutdown.py       180 slow)
conduit_ops_test(metrics_logs   test_metrics_logs.py   120)
conduit_ops_test(tls            test_tls.py            120 interop)
#conduit_ops_test(fanout         test_fanout.py         180 slow)
#conduit_ops_test(threads        test_threads_ops.py    180 mt slow)
