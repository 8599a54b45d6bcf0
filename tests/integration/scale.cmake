# Scale-out: redis-server, two conduitd nodes with redis.url, nginx round-robin
# in front, all started by the tests on free loopback ports and stopped by PID
# (tests/integration/scale/scalelib.py). One ctest per scenario.

find_program(CONDUIT_NGINX nginx PATHS /usr/sbin REQUIRED)
set(CONDUIT_SCALE_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR}/scale)

# conduit_scale_test(NAME TIMEOUT TESTCASE...): one ctest for the given unittest selections.
function(conduit_scale_test name timeout)
  add_test(NAME scale.${name}
    COMMAND ${CONDUIT_PYTHON} ${CONDUIT_SCALE_TESTS_DIR}/test_scale.py --conduitd $<TARGET_FILE:conduitd>
      --redis-server ${CONDUIT_REDIS_SERVER} --nginx ${CONDUIT_NGINX} ${ARGN}
    WORKING_DIRECTORY ${CONDUIT_SCALE_TESTS_DIR})
  set_tests_properties(scale.${name} PROPERTIES
    LABELS "integration;redis;scale"
    TIMEOUT ${timeout}
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endfunction()

# 200 subscribers through nginx on two nodes; HTTP publish on one node, subscribers on the other.
conduit_scale_test(fanout         120 FanoutAcrossNodes)
# Node A SIGKILLed: its clients reconnect through nginx to B and recover with `since`.
conduit_scale_test(failover       120 NodeFailover)
# Redis SIGKILLed under a publisher and restarted, with AOF (appendfsync always) and without.
conduit_scale_test(redis_outage   180 RedisOutageWithPersistence RedisOutageWithoutPersistence)
# A node started while Redis is down: /healthz 200, /readyz 503, ready once Redis is up.
conduit_scale_test(redis_at_start 90  RedisDownAtStart)
# Node B SIGSTOPped under a stream of publications: Redis drops its subscription
# (output buffer limit), B reconnects and resyncs its subscriber with no gap.
conduit_scale_test(slow_node      120 SlowNode)
