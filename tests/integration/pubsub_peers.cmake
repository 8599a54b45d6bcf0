# conduitd --mode pubsub (conduit.v1 channels) driven by independent peers written from
# docs/protocol.md alone: Python websockets, Node ws, raw sockets and plain HTTP. Each module starts
# its own conduitd instances on kernel-chosen ports and stops them by PID.

set(CONDUIT_CHANNELS_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR}/channels)

# conduit_pubsub_peer_test(NAME MODULE TIMEOUT [LABELS l...]): one ctest per Python module.
function(conduit_pubsub_peer_test name module timeout)
  cmake_parse_arguments(T "" "" "LABELS" ${ARGN})
  add_test(NAME pubsub.${name}
    COMMAND ${CONDUIT_PYTHON} ${CONDUIT_CHANNELS_TESTS_DIR}/${module} --conduitd $<TARGET_FILE:conduitd>
    WORKING_DIRECTORY ${CONDUIT_CHANNELS_TESTS_DIR})
  set_tests_properties(pubsub.${name} PROPERTIES
    LABELS "integration;${T_LABELS}"
    TIMEOUT ${timeout}
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;CONDUIT_NODE=${CONDUIT_NODE}")
endfunction()

conduit_pubsub_peer_test(python_peer    test_python_peer.py    180 LABELS interop)
conduit_pubsub_peer_test(node_peer      test_node_peer.py      120 LABELS interop)
# 1,000 publications from 4 connections while 50 subscribers drop and recover: no gap, no duplicate.
# conduitd runs 4 event loops, so label mt: the ThreadSanitizer stage runs it too.
conduit_pubsub_peer_test(recovery_race  test_recovery_race.py  300 LABELS interop slow mt)
conduit_pubsub_peer_test(history        test_history.py        120)
conduit_pubsub_peer_test(jwt            test_jwt.py            180 LABELS interop)
conduit_pubsub_peer_test(http_api       test_http_api.py       120)
